"""The local cloud: template.yaml running on one machine, no Docker, no AWS account.

- DynamoDB: AWS's DynamoDB Local (Java), data kept in ``.data/`` (or in memory).
- Step Functions, API Gateway (keys, usage plans), Secrets Manager, STS: moto,
  in this process, one request at a time (``local.moto_access``), also served
  on a loopback port for the functions' worker processes; the state machine is
  the real ``statemachines/*.asl.json`` run by moto's ASL interpreter, its
  Lambda tasks routed to the real handlers.
- Lambda: each function in worker processes of its own, killed at its timeout
  (``local.lambda_runtime``); tests may run them in this process instead.
- The REST API: ``local.apigateway.RestApiFront`` in front of the real handlers.
- The model: the offline model server when no ANTHROPIC_API_KEY is set.
- IAM: every AWS call a function makes is checked against its role's
  policies from the template (``local.iam``), and refused as AWS refuses it.

Handlers see only standard environment variables (table name, ARNs,
``AWS_ENDPOINT_URL_DYNAMODB``, ``ANTHROPIC_BASE_URL``), exactly as on AWS.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.bootstrap import ensure_table
from local.dynamodb_local import DynamoDBLocal
from local.iam import activate, install_hooks, local_iam, secret_arns
from local.lambda_runtime import DEFAULT_CONCURRENCY, LambdaRuntime, Workers, running_function, running_state_machine
from local.moto_access import MotoServer, remember_state_machine_parses, serialize_moto
from local.schedules import LocalSchedules, SchedulerSchedules, schedules
from local.signing_keys import seed_signing_keys
from local.template import (
    ACCOUNT_ID,
    ROOT,
    FunctionSpec,
    LocalStack,
    Resolver,
    functions,
    load_template,
    resource_policy,
    resources_of_type,
    rest_api,
    state_machines,
    usage_plans,
)

if TYPE_CHECKING:
    from local.sigv4 import LocalCredentials

logger = logging.getLogger(__name__)

DATA_DIR = ROOT / ".data"
ROLE_ARN = "arn:aws:iam::123456789012:role/agenthq-local"

# Set for every handler, as the Lambda service sets its own variables.
BASE_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",  # nosec B105  # dummy credentials for the emulated services
    "AWS_SESSION_TOKEN": "local",  # nosec B105  # dummy credentials for the emulated services
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


@dataclass
class LocalCloudConfig:
    host: str = "127.0.0.1"
    rest_port: int = 3000  # 0 = any free port
    ws_port: int = 3001  # the WebSocket API; 0 = any free port
    ws_idle_timeout: float = 10 * 60  # API Gateway's limits (tests may shorten them, never lengthen)
    ws_max_connection_seconds: float = 2 * 3600
    ws_send_queue_frames: int = 1000  # frames waiting for a client before it is closed as not reading
    data_dir: Path | None = DATA_DIR  # None = DynamoDB in memory
    dynamodb_endpoint: str | None = None  # use a DynamoDB Local that is already running
    stack: LocalStack = field(default_factory=LocalStack)
    anthropic_api_key: str | None = None  # None = offline model server
    # The offline model server's default pace (local/model_server.py, "Model latency"): a call takes this long,
    # its streamed output at this rate (0: all at once). 0 s: as fast as this machine answers.
    model_latency_seconds: float = 0.0
    model_tokens_per_second: float = 0.0
    log_level: str = "WARNING"
    environment: dict[str, str] = field(default_factory=dict)  # overrides for every function's environment
    iam: bool = True  # check every AWS call of a function against its role's policies
    lambda_workers: bool = True  # each function in worker processes (False: every handler in this process)
    lambda_concurrency: int = DEFAULT_CONCURRENCY  # worker processes per function without reserved concurrency
    profile_dir: str | None = None  # a cProfile of every invocation in a worker goes there (--profile-dir)
    # E-mail verification (template.yaml's RequireVerifiedEmail, "true" on AWS): off, so the quick start
    # runs as it is; on, a signup's workspace launches runs once the link mailed to the mailbox is used.
    require_verified_email: bool = False
    verification_sender: str = "no-reply@agenthq.localhost"  # verified in the local SES
    mailbox_dir: Path | None = None  # where the local SES writes mails; None: <data_dir>/mailbox, or a temp dir
    # Webhook receivers and MCP servers on loopback (http://127.0.0.1:…) may be called (agenthq.outbound):
    # a trial points them at a local script. False: as on AWS (public https addresses only).
    outbound_allow_loopback: bool = True


class PortInUse(RuntimeError):
    """A port the local cloud would serve on is taken."""


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (as the fronts bind: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


class LocalCloud:
    def __init__(self, config: LocalCloudConfig | None = None) -> None:
        self.config = config or LocalCloudConfig()
        self.template = load_template()
        self.resolver = Resolver(self.template, self.config.stack)
        self.dynamodb: DynamoDBLocal | None = None
        self.dynamodb_endpoint = self.config.dynamodb_endpoint
        self.runtime: LambdaRuntime | None = None
        self.rest = None
        self.websocket: Any = None  # local.websocket.WebSocketFront
        self.stream_mappings: list[Any] = []  # local.streams.StreamMapping
        self.queue_mappings: list[Any] = []  # local.queues.QueueMapping
        self.model_server: Any = None
        self.schedules: LocalSchedules | None = None
        self.scheduler: SchedulerSchedules | None = None  # EventBridge Scheduler's schedules (the API's)
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self.environment: dict[str, str] = {}
        self.operator: LocalCredentials | None = None  # signs the operator routes (/v1/admin/…)
        # the operator's temporary credentials (12 hours from the start), what the web console takes
        self.operator_session: LocalCredentials | None = None
        self.iam: Any = None  # local.iam.LocalIam while enforcing
        self.moto_server: MotoServer | None = None  # moto for the functions' worker processes
        self.mailbox: Path | None = None  # the local SES's mailbox folder (local.mailbox)
        self._mailbox_temp: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalCloud:
        self._check_ports()  # before anything starts: a taken port is the commonest failure, say it first
        try:
            if self.config.iam:
                install_hooks()  # before any AWS client exists: every botocore session gets them
            self._start_dynamodb()
            # SENTRY_DSN too, before any agenthq module is imported (agenthq.observability reads it once)
            self._set_environment(BASE_ENVIRONMENT | {"AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint or "",
                                                      "SENTRY_DSN": self.config.environment.get("SENTRY_DSN", ""),
                                                      **self._outbound_environment()})
            self._start_moto()
            self._create_table()
            self._create_state_machines()
            self._create_usage_plans()
            self._create_event_buses()
            self._start_mail()
            self._create_schedule_groups()
            self._create_queues()
            self._restore_gateway_keys()
            self._start_model()
            self._name_the_operator()
            self._start_runtime()
            self._start_rest_api()
            self._start_websocket_api()
            self._start_stream_mappings()
            self._start_queue_mappings()
            self._start_schedules()
            assert self.runtime is not None  # nosec B101  # type narrowing; started above
            self.runtime.warm()  # last: the functions' environment is complete (LIVE_URL …)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.schedules is not None:
            self.schedules.stop()
            self.schedules = None
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.iam is not None:
            activate(None)
            self.iam = None
        if self.model_server is not None:
            self.model_server.stop()
            self.model_server = None
        for mapping in self.stream_mappings:
            mapping.stop()
        self.stream_mappings = []
        for mapping in self.queue_mappings:
            mapping.stop()
        self.queue_mappings = []
        if self.websocket is not None:
            self.websocket.stop()
            self.websocket = None
        if self.rest is not None:
            self.rest.stop()
            self.rest = None
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self.moto_server is not None:
            self.moto_server.stop()
            self.moto_server = None
        if self._mailbox_temp is not None:
            from local.mailbox import deliver_to

            deliver_to(None)
            self._mailbox_temp.cleanup()
            self._mailbox_temp = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self.dynamodb is not None:
            self.dynamodb.stop()
            self.dynamodb = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        _reset_process_caches()

    def __enter__(self) -> LocalCloud:
        return self.start()

    @property
    def rest_url(self) -> str:
        assert self.rest is not None  # nosec B101  # type narrowing; set by start()
        return self.rest.base_url

    @property
    def console_url(self) -> str:
        """The web console (ConsoleFunction's routes), on the REST API's origin."""
        return f"{self.rest_url}/console/"

    @property
    def ws_url(self) -> str:
        assert self.websocket is not None  # nosec B101  # type narrowing; set by start()
        return str(self.websocket.url)

    def banner(self, startup_seconds: float) -> str:
        lines = [
            f"AgentHQ local cloud is up ({startup_seconds:.1f} s).",
            f"  REST API       {self.rest_url}        try: curl {self.rest_url}/health",
            f"  Web console    {self.console_url}",
            *([f"  WebSocket API  {self.ws_url}         try: .venv/bin/agenthq runs watch <run id>"]
              if self.websocket else []),
            f"  DynamoDB Local {self.dynamodb_endpoint}   data: {self.config.data_dir or 'in memory'}",
            "  Model          " + (f"offline model server at {self.model_server.base_url} (no ANTHROPIC_API_KEY)"
                                   if self.model_server else "the Anthropic API (ANTHROPIC_API_KEY)"),
            *self.operator_banner(),
            f"  Mailbox        {self.mailbox}: each mail the local SES sends (e-mail verification "
            + ("on: a signup's workspace launches runs once its link is used)" if self.verification_required
               else "off; python -m local --require-verified-email turns it on)"),
            "  Outbound       " + ("webhook receivers and MCP servers may be on loopback (http://127.0.0.1:…), "
                                   "for trials; on AWS only public https URLs" if self.config.outbound_allow_loopback
                                   else "public https URLs only, as on AWS"),
            "Press Ctrl-C to stop.",
        ]
        return "\n".join(lines)

    @property
    def verification_required(self) -> bool:
        return self.config.stack.parameters.get("RequireVerifiedEmail") == "true"

    @contextmanager
    def email_verification(self, required: bool = True) -> Iterator[None]:
        """Meanwhile every function runs with RequireVerifiedEmail as given, as after a deploy that changed
        the parameter (their environments are retired: the next invocation of each is a cold start)."""
        assert self.runtime is not None  # nosec B101  # type narrowing; set by start()
        before = self.config.stack.parameters.get("RequireVerifiedEmail", "false")

        def switch(value: str) -> None:
            assert self.runtime is not None  # nosec B101  # type narrowing
            self.config.stack.parameters["RequireVerifiedEmail"] = value
            self.config.environment["REQUIRE_VERIFIED_EMAIL"] = value
            self._set_environment({"REQUIRE_VERIFIED_EMAIL": value})
            _reset_process_caches()
            self.runtime.retire_environments()

        switch("true" if required else "false")
        try:
            yield
        finally:
            switch(before)

    def operator_banner(self) -> list[str]:
        """Which local credentials sign the operator routes, and how to use them."""
        assert self.operator is not None  # nosec B101  # type narrowing; set by start()
        return [
            f"  Operator       {self.operator.arn}: /v1/admin/* need SigV4 with its local credentials",
            f"                 export AWS_ACCESS_KEY_ID={self.operator.access_key_id} "
            f"AWS_SECRET_ACCESS_KEY={self.operator.secret_access_key} AWS_REGION={self.config.stack.region} "
            f"AGENTHQ_API_URL={self.rest_url}",
            "                 then: .venv/bin/agenthq admin workspace get <workspace id>",
            *([f"                 the web console takes temporary credentials only: access key "
               f"{self.operator_session.access_key_id}, secret {self.operator_session.secret_access_key}, "
               f"session token {self.operator_session.session_token} (12 hours)"] if self.operator_session else []),
        ]

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ pieces

    def _check_ports(self) -> None:
        """Refuse to start when a port to serve on is taken (0 = any free port)."""
        for port, what, variable, other in ((self.config.rest_port, "the REST API", "AGENTHQ_PORT", 3100),
                                            (self.config.ws_port, "the WebSocket API", "AGENTHQ_WS_PORT", 3101)):
            if port and not port_is_free(self.config.host, port):
                raise PortInUse(f"port {port} ({what}) on {self.config.host} is already in use: is another "
                                f"`make dev` running? Stop it, or choose another port: {variable}={other} make dev")

    def _set_environment(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        self.environment.update(values)

    def _start_dynamodb(self) -> None:
        if self.dynamodb_endpoint is None:
            self.dynamodb = DynamoDBLocal(data_dir=self.config.data_dir and self.config.data_dir / "dynamodb")
            self.dynamodb.start()
            self.dynamodb_endpoint = self.dynamodb.endpoint

    def _start_moto(self) -> None:
        from moto import mock_aws

        self._mock = mock_aws(
            config={
                "stepfunctions": {"execute_state_machine": True},
                "core": {"passthrough": {"services": ["dynamodb", "dynamodbstreams"]}},
            }
        )
        self._mock.start()
        serialize_moto()
        from local.usage_plans import hold_moto_to_one_plan_per_stage

        hold_moto_to_one_plan_per_stage()
        from local.schedules import hold_moto_to_schedulers_rules

        hold_moto_to_schedulers_rules()
        remember_state_machine_parses()
        self.moto_server = MotoServer(host="127.0.0.1", port=0).start()
        # moto replaced boto3's default session: credentials and hooks go on the new one.
        self._set_environment(BASE_ENVIRONMENT)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.config.stack.region)

    def _create_table(self) -> None:
        ensure_table(self.client("dynamodb"), self.template, self.config.stack.table_name)

    def _create_state_machines(self) -> None:
        sfn = self.client("stepfunctions")
        for spec in state_machines(self.template, self.resolver):
            arn = sfn.create_state_machine(
                name=spec.name, definition=spec.definition, roleArn=ROLE_ARN, type=spec.type
            )["stateMachineArn"]
            self.config.stack.refs[spec.logical_id] = arn

    def _create_usage_plans(self) -> None:
        apigw = self.client("apigateway")
        for spec in usage_plans(self.template, self.resolver):
            kwargs: dict[str, Any] = {"name": spec.name,
                                      "throttle": {"rateLimit": spec.rate_limit, "burstLimit": spec.burst_limit}}
            if spec.quota_limit is not None:
                kwargs["quota"] = {"limit": spec.quota_limit, "period": spec.quota_period}
            if spec.api_stages:  # as on AWS: one key in one plan per stage (local/usage_plans.py holds moto to it)
                kwargs["apiStages"] = [{"apiId": api_id, "stage": stage} for api_id, stage in spec.api_stages]
            plan = apigw.create_usage_plan(**kwargs)
            self.config.stack.refs[spec.logical_id] = plan["id"]

    def _create_event_buses(self) -> None:
        events = self.client("events")
        for logical_id in resources_of_type(self.template, "AWS::Events::EventBus"):
            events.create_event_bus(Name=self.resolver.ref(logical_id))

    def _create_schedule_groups(self) -> None:
        scheduler = self.client("scheduler")
        for logical_id in resources_of_type(self.template, "AWS::Scheduler::ScheduleGroup"):
            scheduler.create_schedule_group(Name=self.resolver.ref(logical_id))

    def _create_queues(self) -> None:
        from local.queues import create_queues

        create_queues(self.template, self.resolver, self.client("sqs"))

    def _start_queue_mappings(self) -> None:
        """SQS event sources: pollers that invoke their functions as Lambda's event-source mapping does."""
        from local.queues import QueueMapping, queue_arn, queue_mappings

        assert self.runtime is not None  # nosec B101  # type narrowing; started before
        for spec in queue_mappings(self.template):
            self.queue_mappings.append(QueueMapping(spec, self.runtime, self.client("sqs"),
                                                    self.resolver.ref(spec.queue), queue_arn(self.resolver, spec.queue),
                                                    region=self.config.stack.region).start())

    def _start_schedules(self) -> None:
        assert self.runtime is not None  # nosec B101  # type narrowing; set by start()
        self.schedules = LocalSchedules(schedules(self.template), self.runtime, self.config.stack.region).start()
        groups = [self.resolver.ref(g) for g in resources_of_type(self.template, "AWS::Scheduler::ScheduleGroup")]
        self.scheduler = SchedulerSchedules(groups, self.runtime, self.config.stack.region,
                                            may_invoke=self._role_may_invoke if self.iam is not None else None).start()

    def _role_may_invoke(self, role_arn: str, function_arn: str) -> bool:
        """Whether a schedule's role may invoke its target, by the role's policies in the template and its
        trust of scheduler.amazonaws.com (as Scheduler assumes it)."""
        from local.iam.policy import Request, evaluate

        role = self.iam.roles.by_arn.get(role_arn) if self.iam is not None else None
        if role is None or role.trust_policy is None:
            return False
        trusted = evaluate([role.trust_policy], Request("sts:AssumeRole", role_arn, {
            "aws:SourceAccount": ACCOUNT_ID}, principal="scheduler.amazonaws.com"))
        return trusted.allowed and evaluate(role.policies, Request("lambda:InvokeFunction", function_arn, {})).allowed

    def _start_mail(self) -> None:
        """The local SES: the template's sender verified (as the operator does in SES), each mail written to
        the mailbox; and the e-mail verification parameters (off unless asked for)."""
        import tempfile

        from local.mailbox import deliver_to

        parameters = self.config.stack.parameters
        parameters.setdefault("RequireVerifiedEmail", "true" if self.config.require_verified_email else "false")
        parameters.setdefault("VerificationEmailSender", self.config.verification_sender)
        folder = self.config.mailbox_dir
        if folder is None and self.config.data_dir is not None:
            folder = self.config.data_dir / "mailbox"
        if folder is None:
            self._mailbox_temp = tempfile.TemporaryDirectory(prefix="agenthq-mailbox-")
            folder = Path(self._mailbox_temp.name)
        self.mailbox = folder
        deliver_to(folder)
        self.client("ses").verify_email_identity(EmailAddress=parameters["VerificationEmailSender"])

    def _restore_gateway_keys(self) -> None:
        """Give every workspace of the table its API Gateway key again.

        moto keeps API Gateway in memory, so after a restart the workspaces kept in
        DynamoDB Local have no key at the gateway (on AWS the keys persist). For each
        Workspace item not being deleted: create (or find) the key with its stored
        ``usage_key`` value, attach it to its tier's usage plan (USAGE_PLAN_IDS from
        template.yaml: enterprise uses the pro plan) — or to a usage plan of its own,
        made again, when its enterprise overrides call for one — and store the key
        (and plan) id. A workspace made before the operator's directory existed gets
        its directory entry. A Scan is fine here: local tooling, not a request path.
        """
        import sys

        from local.lambda_runtime import LAYER_PATH

        if str(LAYER_PATH) not in sys.path:  # the handlers' own adapter, from the layer
            sys.path.insert(0, str(LAYER_PATH))
        from agenthq.adapters.apigateway import ApiGatewayKeys
        from agenthq.admin.workspaces import own_plan_limits

        plan_ids = self._usage_plan_ids()
        if not plan_ids:
            return
        keys = ApiGatewayKeys(self.client("apigateway"), plan_ids)
        ddb = self.client("dynamodb")
        table = self.config.stack.table_name
        pages = ddb.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="#type = :workspace",
            ProjectionExpression="pk, sk, #id, tier, usage_key, gateway_key_id, gateway_plan_id, limit_overrides, "
                                 "created_at, deleting",
            ExpressionAttributeNames={"#type": "type", "#id": "id"},
            ExpressionAttributeValues={":workspace": {"S": "Workspace"}},
        )
        for page in pages:
            for item in page.get("Items", []):
                if item.get("deleting", {}).get("BOOL") or "usage_key" not in item or "id" not in item:
                    continue
                workspace_id = item["id"]["S"]
                tier = item.get("tier", {}).get("S", "free")
                own = own_plan_limits(tier, json.loads(item.get("limit_overrides", {}).get("S") or "null"))
                try:
                    key_id = keys.ensure_key(workspace_id, item["usage_key"]["S"], tier)
                    plan_id = keys.ensure_workspace_plan(workspace_id, tier, *own) if own else None
                    if plan_id:
                        keys.move_key(key_id, keys.tier_plan(tier), plan_id)
                except Exception:  # one odd item must not keep the local cloud from starting
                    logger.exception("workspace %s: could not restore its API Gateway key", workspace_id)
                    continue
                self._put_directory_entry(ddb, table, workspace_id, item.get("created_at", {}).get("S"))
                if (item.get("gateway_key_id", {}).get("S"), item.get("gateway_plan_id", {}).get("S")) == (
                        key_id, plan_id):
                    continue
                try:
                    ddb.update_item(
                        TableName=table,
                        Key={"pk": item["pk"], "sk": item["sk"]},
                        UpdateExpression="SET gateway_key_id = :key" + (", gateway_plan_id = :plan" if plan_id
                                                                        else " REMOVE gateway_plan_id"),
                        ConditionExpression="attribute_exists(pk)",
                        ExpressionAttributeValues={":key": {"S": key_id}, **({":plan": {"S": plan_id}}
                                                                            if plan_id else {})},
                    )
                except ddb.exceptions.ConditionalCheckFailedException:
                    pass  # deleted meanwhile

    @staticmethod
    def _put_directory_entry(ddb: Any, table: str, workspace_id: str, created_at: str | None) -> None:
        """The workspace's entry in the operator's directory, unless it has one."""
        from agenthq.store.items import WorkspaceDirectoryEntry

        pk, sk = WorkspaceDirectoryEntry.key(workspace_id)
        try:
            ddb.put_item(TableName=table, ConditionExpression="attribute_not_exists(pk)", Item={
                "pk": {"S": pk}, "sk": {"S": sk}, "type": {"S": "WorkspaceDirectoryEntry"},
                "workspace_id": {"S": workspace_id},
                "created_at": {"S": created_at or "1970-01-01T00:00:00.000000+0000"}})
        except ddb.exceptions.ConditionalCheckFailedException:
            pass

    def _usage_plan_ids(self) -> dict[str, str]:
        """Tier -> usage plan id, as the functions see it (template.yaml's USAGE_PLAN_IDS)."""
        variables = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        if "USAGE_PLAN_IDS" not in variables:
            return {}
        return json.loads(self.resolver.resolve(variables["USAGE_PLAN_IDS"]))

    def _start_model(self) -> None:
        """The Anthropic API key goes into (moto's) Secrets Manager, where the
        functions read it as on AWS. Without a real key, the offline model server
        answers instead, at ANTHROPIC_BASE_URL."""
        key = self.config.anthropic_api_key
        if key is None:
            from local.model_server import OfflineModelServer

            self.model_server = OfflineModelServer(host="127.0.0.1", port=0,
                                                   latency_seconds=self.config.model_latency_seconds,
                                                   tokens_per_second=self.config.model_tokens_per_second)
            self._set_environment({"ANTHROPIC_BASE_URL": self.model_server.start()})
            key = "offline-local-key"
        name = f"{self.config.stack.stack_name}/anthropic-api-key"
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=key)["ARN"]
        self.config.stack.refs["AnthropicApiKeySecret"] = arn

    def _name_the_operator(self) -> None:
        """The local operator's credentials, and the template's OperatorPrincipalArns naming them (unless
        the stack's parameters name others): the gateway's resource policy and the admin function then
        admit that operator, and refuse any other signer, as on AWS."""
        from local.sigv4 import operator_credentials, session_credentials

        self.operator = operator_credentials(self.config.data_dir)
        self.operator_session = session_credentials(self.operator, 12 * 3600)
        self.config.stack.parameters.setdefault("OperatorPrincipalArns", self.operator.arn)

    def _start_runtime(self) -> None:
        specs = functions(self.template, self.resolver)
        environment: dict[str, str] = {}
        for spec in specs.values():
            environment.update(_template_variables(spec))
        environment["POWERTOOLS_LOG_LEVEL"] = self.config.log_level
        environment.update(self.config.environment)
        self._set_environment(environment)
        _reset_process_caches()
        seed_signing_keys(self.client("ssm"), environment["JWT_SIGNING_KEY_PARAMETER"],
                          environment["JWT_PUBLIC_KEYS_PARAMETER"], self.config.data_dir)
        workers = Workers(environment=self.function_environment, iam=self._worker_iam,
                          concurrency=self.config.lambda_concurrency,
                          profile_dir=self.config.profile_dir) if self.config.lambda_workers else None
        self.runtime = LambdaRuntime(specs, region=self.config.stack.region, workers=workers)
        if self.config.iam:
            self.iam = local_iam(self.template, self.resolver, specs, running_function,
                                 function_access_key=BASE_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
                                 running_state_machine=running_state_machine)
            activate(self.iam)
        self.runtime.install_invoke_hook()

    def function_environment(self, spec: FunctionSpec) -> dict[str, str]:
        """The whole environment of a function's worker process, as Lambda sets it: Lambda's own
        variables, the role's credentials, the function's variables from template.yaml — the local
        endpoints replacing AWS's where the template names an AWS one — the functions' settings you
        tuned for `make dev` (.env.example), and nothing else."""
        assert self.moto_server is not None  # nosec B101  # type narrowing; started before the runtime
        local_values = {key: self.environment[key] for key in ("LIVE_CONNECTIONS_URL", "LIVE_URL", "PUBLIC_API_URL")
                        if key in spec.environment and key in self.environment}
        tuned = {name: os.environ[name] for name in self._tunable_settings() if name in os.environ}
        return {
            "PATH": os.defpath, "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "_HANDLER": spec.handler,
            # no developer's ~/.aws files: a function's configuration is its environment
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **BASE_ENVIRONMENT,
            **tuned,
            **_template_variables(spec),
            **local_values,
            # where the services are: boto3's standard variables (moto's server, DynamoDB Local) and the
            # offline model server (ANTHROPIC_BASE_URL, which the SDK reads)
            "AWS_ENDPOINT_URL": self.moto_server.url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint or "",
            **({"ANTHROPIC_BASE_URL": self.environment["ANTHROPIC_BASE_URL"]}
               if "ANTHROPIC_BASE_URL" in self.environment else {}),
            "POWERTOOLS_LOG_LEVEL": self.config.log_level,
            **self._outbound_environment(),
            **self.config.environment,
        }

    def _outbound_environment(self) -> dict[str, str]:
        return {"OUTBOUND_ALLOW_LOOPBACK": "true" if self.config.outbound_allow_loopback else "false"}

    def _tunable_settings(self) -> set[str]:
        """The functions' settings (agenthq.settings) that template.yaml sets for no function: what a
        developer may set for `make dev` in the environment or .env, for every function."""
        from agenthq.settings import Settings

        declared = set(BASE_ENVIRONMENT)
        for function in functions(self.template, self.resolver).values():
            declared |= set(function.environment)
        return {field.alias for field in Settings.model_fields.values() if field.alias and field.alias not in declared}

    def _worker_iam(self) -> dict[str, Any] | None:
        """What a worker process needs to enforce its function's role (None: enforcement is off)."""
        if self.iam is None:
            return None
        return {"template": self.template, "stack": dataclasses.asdict(self.config.stack),
                "function_access_key": BASE_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
                "secrets": secret_arns(self.config.stack.region)}

    def _start_rest_api(self) -> None:
        from local.apigateway import RestApiFront
        from local.sigv4 import SigV4Verifier
        from local.usage_plans import GatewayUsagePlanMeter

        assert self.runtime is not None and self.operator is not None  # nosec B101  # type narrowing; start()
        self.rest = RestApiFront(rest_api(self.template), self.runtime,
                                 meter=GatewayUsagePlanMeter(self.client("apigateway")),
                                 host=self.config.host, port=self.config.rest_port,
                                 region=self.config.stack.region,
                                 signatures=SigV4Verifier([self.operator, *filter(None, [self.operator_session])],
                                                          self.config.stack.region),
                                 policy=resource_policy(self.template, self.resolver)).start()
        self._set_environment({"PUBLIC_API_URL": self.rest_url})  # the links in mails (no custom domain here)


    def _start_websocket_api(self) -> None:
        """The WebSocket API and its @connections API; the functions reach the latter at LIVE_CONNECTIONS_URL."""
        from local.template import websocket_api
        from local.websocket import WebSocketFront

        spec = websocket_api(self.template)
        if spec is None:
            return
        assert self.runtime is not None  # nosec B101  # type narrowing; started before
        self.websocket = WebSocketFront(spec, self.runtime, host=self.config.host, port=self.config.ws_port,
                                        region=self.config.stack.region, idle_timeout=self.config.ws_idle_timeout,
                                        max_connection_seconds=self.config.ws_max_connection_seconds,
                                        send_queue_frames=self.config.ws_send_queue_frames).start()
        # LIVE_CONNECTIONS_URL: the @connections API the functions post to; LIVE_URL: where clients connect
        # (the web console reads it from its config.json). On AWS both are the WebSocket API's own host.
        self._set_environment({"LIVE_CONNECTIONS_URL": self.websocket.connections_url,
                               "LIVE_URL": self.websocket.url})
        _reset_process_caches()

    def _start_stream_mappings(self) -> None:
        """The table's stream → its consumers, as Lambda's event-source mappings (DynamoDB Local's stream)."""
        import boto3

        from local.streams import StreamMapping
        from local.template import stream_mappings

        assert self.runtime is not None  # nosec B101  # type narrowing; started before
        streams = boto3.client("dynamodbstreams", region_name=self.config.stack.region,
                               endpoint_url=self.dynamodb_endpoint)
        for spec in stream_mappings(self.template):
            self.stream_mappings.append(StreamMapping(spec, self.runtime, self.client("dynamodb"), streams,
                                                      self.config.stack.table_name,
                                                      region=self.config.stack.region).start())


def _template_variables(spec: FunctionSpec) -> dict[str, str]:
    """A function's variables from template.yaml, less the ``AWS_ENDPOINT_URL_<SERVICE>`` ones it declares
    (empty there, for `sam local`'s env file to fill): the local cloud names its own endpoints."""
    return {name: value for name, value in spec.environment.items() if not name.startswith("AWS_ENDPOINT_URL")}


def _reset_process_caches() -> None:
    """Forget settings and services built from an earlier environment."""
    import sys

    settings = sys.modules.get("agenthq.settings")
    if settings is not None:
        settings.get_settings.cache_clear()
    services = sys.modules.get("agenthq.services")
    if services is not None:
        services.set_services(None)
    store = sys.modules.get("agenthq.store.base")
    if store is not None:  # its botocore session may predate the IAM hooks; its tenant role the environment
        store.BaseItem._connection = None
        store._tenancy.forget()
