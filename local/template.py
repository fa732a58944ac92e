"""Read template.yaml — the single source of truth — for the local cloud.

The local cloud never re-declares a resource: the table, the routes, the
functions and their environment, the state machine, the usage plans and the
gateway responses all come from here, with CloudFormation intrinsics resolved
against local values (account 123456789012, a stack name, local ARNs).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"

ACCOUNT_ID = "123456789012"
PARTITION = "aws"
LIVE_API_ID = "agenthqlive"  # the WebSocket API's id in the local cloud (its ARNs and @connections URL)
REST_API_ID = "agenthqlocal"  # the REST API's id in the local cloud (its ARNs, its usage plans' API stages)


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form tags."""


def _cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # nosec B506  # _CfnLoader is a SafeLoader subclass


# --------------------------------------------------------------------------- intrinsic resolution


@dataclass
class LocalStack:
    """The values intrinsics resolve to in the local cloud."""

    stack_name: str = "agenthq"
    region: str = "us-east-1"
    table_name: str = "agenthq-local"
    parameters: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value (filled in as resources exist)

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
        }


class Resolver:
    def __init__(self, template: dict[str, Any], stack: LocalStack) -> None:
        self.template = template
        self.stack = stack

    def ref(self, name: str) -> str:
        pseudo = self.stack.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.stack.parameters:
            return self.stack.parameters[name]
        params = self.template.get("Parameters", {})
        if name in params:
            return str(params[name].get("Default", ""))
        if name in self.stack.refs:
            return self.stack.refs[name]
        resources = self.template.get("Resources", {})
        if name == "Table" or resources.get(name, {}).get("Type") == "AWS::DynamoDB::Table":
            return self.stack.table_name
        api, _, suffix = name.partition(".")
        if suffix == "Stage" and resources.get(api, {}).get("Type") == "AWS::Serverless::Api":
            return str(self.resolve(resources[api]["Properties"]["StageName"]))  # SAM's <Api>.Stage reference
        resource = resources.get(name)
        if resource is None:
            raise KeyError(f"unknown Ref {name!r}")
        kind = resource["Type"]
        if kind == "AWS::Serverless::Function":
            return function_name(self.stack, name)
        if kind == "AWS::Serverless::StateMachine":
            return self.state_machine_arn(name)
        if kind == "AWS::Events::EventBus":
            return str(self.resolve(resource.get("Properties", {}).get("Name", name)))
        if kind == "AWS::Scheduler::ScheduleGroup":
            return str(self.resolve(resource.get("Properties", {}).get("Name", name)))
        if kind == "AWS::KMS::Key":  # a key id is a UUID
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack.stack_name}/{name}"))
        if kind == "AWS::SQS::Queue":  # its URL (local.queues sets the real one when it creates the queue)
            return f"https://sqs.{self.stack.region}.amazonaws.com/{ACCOUNT_ID}/{self._queue_name(name)}"
        if kind == "AWS::ApiGatewayV2::Api":
            return LIVE_API_ID
        if kind == "AWS::Serverless::Api":
            return REST_API_ID
        return f"local-{name}"

    def get_att(self, name: str, attribute: str) -> str:
        resources = self.template.get("Resources", {})
        kind = resources.get(name, {}).get("Type")
        if kind == "AWS::Serverless::Function" and attribute == "Arn":
            return f"arn:{PARTITION}:lambda:{self.stack.region}:{ACCOUNT_ID}:function:{function_name(self.stack, name)}"
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return f"arn:{PARTITION}:dynamodb:{self.stack.region}:{ACCOUNT_ID}:table/{self.stack.table_name}/stream/local"
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:{PARTITION}:dynamodb:{self.stack.region}:{ACCOUNT_ID}:table/{self.stack.table_name}"
        if kind == "AWS::Serverless::StateMachine" and attribute == "Name":
            return self.state_machine_name(name)
        if kind == "AWS::Events::EventBus" and attribute == "Arn":
            return f"arn:{PARTITION}:events:{self.stack.region}:{ACCOUNT_ID}:event-bus/{self.ref(name)}"
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{self.stack.stack_name}-{name}"
        if kind == "AWS::KMS::Key" and attribute == "Arn":
            return f"arn:{PARTITION}:kms:{self.stack.region}:{ACCOUNT_ID}:key/{self.ref(name)}"
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return f"arn:{PARTITION}:sqs:{self.stack.region}:{ACCOUNT_ID}:{self._queue_name(name)}"
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return self._queue_name(name)
        return f"local-{name}-{attribute}"

    def _queue_name(self, logical_id: str) -> str:
        props = self.template["Resources"][logical_id].get("Properties", {})
        return str(self.resolve(props.get("QueueName", f"{self.stack.stack_name}-{logical_id}")))

    def state_machine_name(self, logical_id: str) -> str:
        props = self.template["Resources"][logical_id].get("Properties", {})
        return self.resolve(props.get("Name", logical_id))

    def state_machine_arn(self, logical_id: str) -> str:
        name = self.state_machine_name(logical_id)
        return f"arn:{PARTITION}:states:{self.stack.region}:{ACCOUNT_ID}:stateMachine:{name}"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(self.resolve(i)) for i in items)
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::If":
                raise NotImplementedError("Fn::If is not used by this template")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return self.get_att(logical, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


def function_name(stack: LocalStack, logical_id: str) -> str:
    return f"{stack.stack_name}-{logical_id}"


# --------------------------------------------------------------------------- resources


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == kind}


def table_definition(template: dict[str, Any], table_name: str) -> dict[str, Any]:
    """CreateTable arguments for the template's table (plus its TTL attribute)."""
    (logical_id, table), = resources_of_type(template, "AWS::DynamoDB::Table").items()
    props = table["Properties"]
    definition: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    stream = props.get("StreamSpecification")
    if stream:
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    ttl = props.get("TimeToLiveSpecification")
    return {"create": definition, "ttl_attribute": ttl["AttributeName"] if ttl and ttl.get("Enabled") else None}


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_uri: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: at most this many at once
    runtime: str = "python3.13"
    architecture: str = "x86_64"  # Architectures' only entry (Lambda's default: x86_64)


def functions(template: dict[str, Any], resolver: Resolver) -> dict[str, FunctionSpec]:
    globals_ = template.get("Globals", {}).get("Function", {})
    specs = {}
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = {**globals_, **resource.get("Properties", {})}
        env = dict(globals_.get("Environment", {}).get("Variables", {}))
        env.update(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=function_name(resolver.stack, logical_id),
            code_uri=ROOT / props["CodeUri"],
            handler=props["Handler"],
            timeout=int(props.get("Timeout", 3)),
            memory=int(props.get("MemorySize", 128)),
            environment={k: str(resolver.resolve(v)) for k, v in env.items()},
            reserved_concurrency=(int(props["ReservedConcurrentExecutions"])
                                  if props.get("ReservedConcurrentExecutions") is not None else None),
            runtime=str(props.get("Runtime", "")),
            architecture=str((props.get("Architectures") or ["x86_64"])[0]),
        )
    return specs


@dataclass(frozen=True)
class Route:
    function: str  # logical id
    method: str  # GET, POST, ... or ANY
    path: str  # /workspaces/{wid}/agents
    authorized: bool  # goes through the API's (Lambda) authorizer
    api_key_required: bool  # metered by the usage plans
    iam_auth: bool = False  # AWS_IAM: the caller signs with SigV4 (operator routes)

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\+\\\}", r"(?P<\1>.+)", re.escape(self.path))
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", regex)
        return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class MethodThrottle:
    """A stage's throttle of one method (``resource_path`` ``/*`` and ``http_method`` ``*``: every method)."""

    resource_path: str  # decoded: /auth/signup, or /*
    http_method: str  # POST, or *
    rate_limit: float  # requests per second, refilled into the method's bucket
    burst_limit: int  # the bucket's size

    def applies_to(self, route: Route) -> bool:
        return (self.resource_path in ("/*", route.path)) and self.http_method in ("*", route.method)


@dataclass(frozen=True)
class RestApiSpec:
    logical_id: str
    stage: str
    routes: tuple[Route, ...]
    authorizer_function: str | None
    gateway_responses: dict[str, dict[str, Any]]
    method_throttles: tuple[MethodThrottle, ...] = ()

    def throttle_of(self, route: Route) -> MethodThrottle | None:
        """The stage's throttle of the route's method: its own setting, else the stage's default (``/*``)."""
        found = [t for t in self.method_throttles if t.applies_to(route)]
        found.sort(key=lambda t: (t.resource_path != "/*", t.http_method != "*"), reverse=True)
        return found[0] if found else None


def method_throttles(settings: list[dict[str, Any]]) -> tuple[MethodThrottle, ...]:
    """The throttles of a stage's ``MethodSettings``, whose ``ResourcePath`` is encoded as API Gateway
    requires: ``/`` inside the path as ``~1`` (``/~1auth~1signup``), or ``/*`` for every resource. A path
    with a plain ``/`` after the first is refused, as CloudFormation refuses it."""
    found = []
    for setting in settings:
        if "ThrottlingRateLimit" not in setting and "ThrottlingBurstLimit" not in setting:
            continue
        encoded = str(setting.get("ResourcePath", "/*"))
        if not encoded.startswith("/") or "/" in encoded[1:]:
            raise ValueError(f"MethodSettings ResourcePath {encoded!r}: encode '/' inside the path as '~1' "
                             f"(e.g. /~1auth~1signup), as API Gateway requires")
        path = encoded if encoded == "/*" else (encoded[1:].replace("~1", "/").replace("~0", "~") or "/")
        rate = float(setting.get("ThrottlingRateLimit", 10_000))
        found.append(MethodThrottle(resource_path=path, http_method=str(setting.get("HttpMethod", "*")).upper(),
                                    rate_limit=rate, burst_limit=int(setting.get("ThrottlingBurstLimit", 5_000))))
    return tuple(found)


def resource_policy(template: dict[str, Any], resolver: Resolver) -> list[dict[str, Any]]:
    """The REST API's resource policy statements (SAM's ``Auth.ResourcePolicy.CustomStatements``),
    intrinsics resolved; none when the API has no policy."""
    (_, api), = resources_of_type(template, "AWS::Serverless::Api").items()
    policy = api["Properties"].get("Auth", {}).get("ResourcePolicy") or {}
    unsupported = set(policy) - {"CustomStatements"}
    if unsupported:  # SAM's shorthands (IpRangeBlacklist, …) would be ignored here: refuse rather than be lenient
        raise NotImplementedError(f"ResourcePolicy {sorted(unsupported)} is not run by the local cloud")
    return [resolver.resolve(statement) for statement in policy.get("CustomStatements", [])]


def rest_api(template: dict[str, Any]) -> RestApiSpec:
    (api_id, api), = resources_of_type(template, "AWS::Serverless::Api").items()
    props = api["Properties"]
    auth = props.get("Auth", {})
    default_authorizer = auth.get("DefaultAuthorizer")
    authorizer_function = None
    if default_authorizer:
        arn = auth["Authorizers"][default_authorizer]["FunctionArn"]
        authorizer_function = arn["Fn::GetAtt"][0]
    default_key_required = bool(auth.get("ApiKeyRequired", False))
    routes = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            ep = event["Properties"]
            event_auth = ep.get("Auth", {})
            authorizer = event_auth.get("Authorizer", default_authorizer)
            routes.append(
                Route(
                    function=logical_id,
                    method=ep["Method"].upper(),
                    path=ep["Path"],
                    authorized=authorizer is not None and authorizer not in ("NONE", "AWS_IAM"),
                    api_key_required=bool(event_auth.get("ApiKeyRequired", default_key_required)),
                    iam_auth=authorizer == "AWS_IAM",
                )
            )
    # Literal segments win over parameters, as in API Gateway.
    routes.sort(key=lambda r: (r.path.count("{"), -len(r.path)))
    return RestApiSpec(
        logical_id=api_id,
        stage=props["StageName"],
        routes=tuple(routes),
        authorizer_function=authorizer_function,
        gateway_responses=props.get("GatewayResponses", {}),
        method_throttles=method_throttles(props.get("MethodSettings", [])),
    )


@dataclass(frozen=True)
class UsagePlanSpec:
    logical_id: str
    name: str
    rate_limit: float
    burst_limit: int
    quota_limit: int | None
    quota_period: str | None
    api_stages: tuple[tuple[str, str], ...] = ()  # (API id, stage name): where the plan's keys are metered


def usage_plans(template: dict[str, Any], resolver: Resolver) -> list[UsagePlanSpec]:
    plans = []
    for logical_id, resource in resources_of_type(template, "AWS::ApiGateway::UsagePlan").items():
        props = resource["Properties"]
        throttle = props.get("Throttle", {})
        quota = props.get("Quota", {})
        plans.append(
            UsagePlanSpec(
                logical_id=logical_id,
                name=resolver.resolve(props.get("UsagePlanName", logical_id)),
                rate_limit=float(throttle.get("RateLimit", 0)),
                burst_limit=int(throttle.get("BurstLimit", 0)),
                quota_limit=int(quota["Limit"]) if quota else None,
                quota_period=quota.get("Period") if quota else None,
                api_stages=tuple((str(resolver.resolve(stage["ApiId"])), str(resolver.resolve(stage["Stage"])))
                                 for stage in props.get("ApiStages", [])),
            )
        )
    return plans


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    definition: str  # JSON text with substitutions applied
    type: str


def state_machines(template: dict[str, Any], resolver: Resolver) -> list[StateMachineSpec]:
    specs = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::StateMachine").items():
        props = resource["Properties"]
        text = (ROOT / props["DefinitionUri"]).read_text(encoding="utf-8")
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            text = text.replace("${" + key + "}", str(resolver.resolve(value)))
        json.loads(text)  # fail early on a broken definition
        specs.append(
            StateMachineSpec(
                logical_id=logical_id,
                name=resolver.state_machine_name(logical_id),
                definition=text,
                type=props.get("Type", "STANDARD"),
            )
        )
    return specs


# --------------------------------------------------------------------------- the WebSocket API


@dataclass(frozen=True)
class WebSocketRoute:
    key: str  # $connect, $disconnect, $default, or an action
    function: str  # logical id of the integration's function
    authorizer_function: str | None  # $connect's REQUEST authorizer
    two_way: bool  # the integration's answer is sent back on the connection


@dataclass(frozen=True)
class WebSocketApiSpec:
    logical_id: str
    stage: str
    route_selection: str  # $request.body.<field>
    routes: dict[str, WebSocketRoute]
    #: The stage's throttles: route key → (rate a second, burst); "*" is DefaultRouteSettings'.
    throttles: dict[str, tuple[float, int]] = field(default_factory=dict)

    def throttle_of(self, route_key: str) -> tuple[float, int] | None:
        return self.throttles.get(route_key) or self.throttles.get("*")


def _function_of_uri(uri: Any) -> str:
    """The logical id of the function a Lambda integration or authorizer URI names."""
    text = json.dumps(uri)
    found = re.search(r"\$\{([A-Za-z0-9]+)\.Arn\}", text) or re.search(r'"Fn::GetAtt": \["([A-Za-z0-9]+)"', text)
    if not found:
        raise ValueError(f"cannot tell the function of {uri!r}")
    return found.group(1)


def websocket_api(template: dict[str, Any]) -> WebSocketApiSpec | None:
    """The template's WebSocket API (AWS::ApiGatewayV2, protocol WEBSOCKET), if it has one."""
    apis = {k: v for k, v in resources_of_type(template, "AWS::ApiGatewayV2::Api").items()
            if v.get("Properties", {}).get("ProtocolType") == "WEBSOCKET"}
    if not apis:
        return None
    (api_id, api), = apis.items()

    def of_api(kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in resources_of_type(template, kind).items()
                if v.get("Properties", {}).get("ApiId") == {"Ref": api_id}}

    integrations = {k: _function_of_uri(v["Properties"]["IntegrationUri"])
                    for k, v in of_api("AWS::ApiGatewayV2::Integration").items()}
    authorizers = {k: _function_of_uri(v["Properties"]["AuthorizerUri"])
                   for k, v in of_api("AWS::ApiGatewayV2::Authorizer").items()}
    responded = {v["Properties"]["RouteId"]["Ref"] for v in of_api("AWS::ApiGatewayV2::RouteResponse").values()}
    routes = {}
    for logical_id, resource in of_api("AWS::ApiGatewayV2::Route").items():
        props = resource["Properties"]
        target = props["Target"]
        target_text = target["Fn::Sub"] if isinstance(target, dict) else target
        integration = re.search(r"integrations/\$\{([A-Za-z0-9]+)\}", str(target_text))
        if integration is None:
            raise ValueError(f"route {logical_id}: unsupported target {target!r}")
        authorizer = props.get("AuthorizerId", {}).get("Ref") if props.get("AuthorizationType") == "CUSTOM" else None
        routes[props["RouteKey"]] = WebSocketRoute(
            key=props["RouteKey"], function=integrations[integration.group(1)],
            authorizer_function=authorizers[authorizer] if authorizer else None,
            two_way=logical_id in responded)
    stages = of_api("AWS::ApiGatewayV2::Stage")
    stage_props = next(iter(stages.values()))["Properties"] if stages else {}
    stage = stage_props.get("StageName", "v1")
    throttles: dict[str, tuple[float, int]] = {}
    for key, settings in [("*", stage_props.get("DefaultRouteSettings") or {}),
                          *(stage_props.get("RouteSettings") or {}).items()]:
        if "ThrottlingRateLimit" in settings or "ThrottlingBurstLimit" in settings:
            throttles[key] = (float(settings.get("ThrottlingRateLimit", 0)), int(settings.get("ThrottlingBurstLimit", 0)))
    return WebSocketApiSpec(logical_id=api_id, stage=stage,
                            route_selection=api["Properties"].get("RouteSelectionExpression", "$request.body.action"),
                            routes=routes, throttles=throttles)


@dataclass(frozen=True)
class StreamMappingSpec:
    function: str  # logical id
    batch_size: int
    maximum_retry_attempts: int  # -1: until the record expires
    report_item_failures: bool
    filters: tuple[dict[str, Any], ...]  # FilterCriteria patterns
    starting_position: str


def stream_mappings(template: dict[str, Any]) -> list[StreamMappingSpec]:
    """The functions' DynamoDB stream event sources (Lambda event-source mappings)."""
    found = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "DynamoDB":
                continue
            props = event["Properties"]
            filters = tuple(json.loads(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", []))
            found.append(StreamMappingSpec(
                function=logical_id, batch_size=int(props.get("BatchSize", 100)),
                maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                filters=filters, starting_position=props.get("StartingPosition", "LATEST")))
    return found
