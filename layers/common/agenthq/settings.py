"""Typed settings, read once from the environment.

Every knob of the application lives here. On AWS the values come from the
function's environment in template.yaml; the local cloud sets the same
variables. Nothing else in the package reads ``os.environ`` (boto3, the
anthropic SDK, Powertools and sentry-sdk read their own standard variables,
such as ``AWS_ENDPOINT_URL_DYNAMODB``, ``ANTHROPIC_BASE_URL`` and
``POWERTOOLS_METRICS_NAMESPACE``; ``agenthq.observability`` looks at
``SENTRY_DSN`` only to decide whether to import sentry-sdk at all).
.env.example lists every variable, with these defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agenthq import __version__


class SettingsError(RuntimeError):
    """The environment does not describe a valid configuration."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(alias="TABLE_NAME", min_length=3)
    region: str = Field(default="us-east-1", alias="AWS_REGION")
    state_machine_arn: str = Field(default="", alias="STATE_MACHINE_ARN")
    offboarding_state_machine_arn: str = Field(default="", alias="OFFBOARDING_STATE_MACHINE_ARN")
    version: str = Field(default=__version__, alias="APP_VERSION")

    # Tenancy: the role assumed (with a workspace_id session tag) for workspace data.
    tenant_role_arn: str = Field(default="", alias="TENANT_ROLE_ARN")

    # Sessions
    jwt_issuer: str = Field(default="agenthq", alias="JWT_ISSUER")
    jwt_audience: str = Field(default="agenthq-api", alias="JWT_AUDIENCE")
    jwt_signing_key_parameter: str = Field(default="/agenthq/jwt-signing-keys", alias="JWT_SIGNING_KEY_PARAMETER")
    jwt_public_keys_parameter: str = Field(default="/agenthq/jwt-public-keys", alias="JWT_PUBLIC_KEYS_PARAMETER")
    access_token_ttl_seconds: int = Field(default=900, alias="ACCESS_TOKEN_TTL_SECONDS", ge=60, le=3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, alias="REFRESH_TOKEN_TTL_SECONDS", ge=3600)

    # API Gateway usage plans, one per tier: {"free": "<plan id>", ...}
    usage_plan_ids: dict[str, str] = Field(default_factory=dict, alias="USAGE_PLAN_IDS")

    # Runs and the model
    anthropic_api_key_secret_arn: str = Field(default="", alias="ANTHROPIC_API_KEY_SECRET_ARN")
    model_max_tokens: int = Field(default=4096, alias="MODEL_MAX_TOKENS", ge=1, le=64000)
    model_timeout_seconds: float = Field(default=60, alias="MODEL_TIMEOUT_SECONDS", gt=0)
    model_max_attempts: int = Field(default=4, alias="MODEL_MAX_ATTEMPTS", ge=1, le=10)
    model_max_wait_seconds: float = Field(default=20, alias="MODEL_MAX_WAIT_SECONDS", ge=0)
    run_timeout_seconds: int = Field(default=3600, alias="RUN_TIMEOUT_SECONDS", ge=10)
    # The functions' Lambda architecture (template.yaml's Architectures): the run worker's GB-s are priced by it.
    lambda_architecture: Literal["arm64", "x86_64"] = Field(default="arm64", alias="LAMBDA_ARCHITECTURE")
    max_delegation_depth: int = Field(default=3, alias="MAX_DELEGATION_DEPTH", ge=0, le=10)
    max_run_input_chars: int = Field(default=100_000, alias="MAX_RUN_INPUT_CHARS", ge=1)
    usage_counter_shards: int = Field(default=8, alias="USAGE_COUNTER_SHARDS", ge=1, le=100)
    event_bus_name: str = Field(default="", alias="EVENT_BUS_NAME")  # operator events (usage alerts)

    # Live status (the WebSocket API): its @connections endpoint (https://<api>.execute-api.<region>.amazonaws.com/v1)
    live_connections_url: str = Field(default="", alias="LIVE_CONNECTIONS_URL")
    live_ticket_ttl_seconds: int = Field(default=60, alias="LIVE_TICKET_TTL_SECONDS", ge=5, le=300)
    live_connection_ttl_seconds: int = Field(default=2 * 3600 + 600, alias="LIVE_CONNECTION_TTL_SECONDS", ge=60)
    live_replay_limit: int = Field(default=100, alias="LIVE_REPLAY_LIMIT", ge=1, le=1000)  # events per subscribe
    # subscribes per connection per LIVE_SUBSCRIBE_WINDOW_SECONDS (beyond: a `rate_limited` error frame)
    live_subscribes_per_window: int = Field(default=10, alias="LIVE_SUBSCRIBES_PER_WINDOW", ge=1, le=1000)
    live_subscribe_window_seconds: int = Field(default=10, alias="LIVE_SUBSCRIBE_WINDOW_SECONDS", ge=1, le=3600)
    live_max_subscriptions: int = Field(default=100, alias="LIVE_MAX_SUBSCRIPTIONS", ge=1, le=1000)
    live_broadcast_parallelism: int = Field(default=16, alias="LIVE_BROADCAST_PARALLELISM", ge=1, le=256)
    # The WebSocket API's URL for clients (wss://<api>.execute-api.<region>.amazonaws.com/v1): the web
    # console learns it from /v1/console/config.json and allows it in its Content-Security-Policy.
    live_url: str = Field(default="", alias="LIVE_URL")

    # E-mail verification (template.yaml's RequireVerifiedEmail, VerificationEmailSender, PublicApiUrl):
    # when required, a workspace launches no run (nor anything else that spends) until the address of the
    # account that signed it up is verified through a one-time link sent by Amazon SES (agenthq.verification).
    require_verified_email: bool = Field(default=False, alias="REQUIRE_VERIFIED_EMAIL")
    verification_email_sender: str = Field(default="", alias="VERIFICATION_EMAIL_SENDER", max_length=254)
    verification_link_ttl_seconds: int = Field(default=24 * 3600, alias="VERIFICATION_LINK_TTL_SECONDS",
                                               ge=300, le=7 * 86400)
    # The API's public base URL with its stage (https://api.example.com/v1): the links in mails point under it.
    # Empty: taken from the request as API Gateway received it (its domain name and stage or base path).
    public_api_url: str = Field(default="", alias="PUBLIC_API_URL", max_length=2048)
    # Webhooks: the delivery queue (SQS) of agenthq.webhooks
    webhook_queue_url: str = Field(default="", alias="WEBHOOK_QUEUE_URL")

    # Schedules (EventBridge Scheduler): the deployment's schedule group, the fire function each schedule
    # invokes, and the role Scheduler invokes it with (template.yaml's ScheduleGroup, ScheduleFireFunction,
    # ScheduleTargetRole).
    schedule_group_name: str = Field(default="", alias="SCHEDULE_GROUP_NAME")
    schedule_target_arn: str = Field(default="", alias="SCHEDULE_TARGET_ARN")
    schedule_role_arn: str = Field(default="", alias="SCHEDULE_ROLE_ARN")
    # MCP servers (agenthq.mcp): their headers' secrets (<prefix><workspace>/<server>, under the KMS key
    # MCP_HEADERS_KEY_ID), a call's time and size bounds.
    mcp_secret_prefix: str = Field(default="agenthq/mcp/", alias="MCP_SECRET_PREFIX", min_length=1)
    mcp_headers_key_id: str = Field(default="", alias="MCP_HEADERS_KEY_ID")
    mcp_timeout_seconds: float = Field(default=20, alias="MCP_TIMEOUT_SECONDS", gt=0, le=120)
    mcp_max_result_chars: int = Field(default=16_000, alias="MCP_MAX_RESULT_CHARS", ge=1, le=100_000)
    mcp_max_response_bytes: int = Field(default=1_048_576, alias="MCP_MAX_RESPONSE_BYTES", ge=1024)

    # HTTP edge
    max_request_bytes: int = Field(default=256 * 1024, alias="MAX_REQUEST_BYTES", gt=0)
    cors_allow_origins: tuple[str, ...] = Field(default=(), alias="CORS_ALLOW_ORIGINS")
    # Who may use the operator routes (/v1/admin/*): IAM user or role ARNs (template.yaml's
    # OperatorPrincipalArns, comma-separated; `*` wildcards as in ArnLike). None: nobody (agenthq.operators).
    operator_principal_arns: tuple[str, ...] = Field(default=(), alias="OPERATOR_PRINCIPAL_ARNS")

    # Calls to tenant-given URLs (webhooks, MCP servers; agenthq.outbound): only the local cloud sets this,
    # so tests and `make dev` can reach a receiver on loopback (and over http). Never on AWS.
    outbound_allow_loopback: bool = Field(default=False, alias="OUTBOUND_ALLOW_LOOPBACK")

    # AWS SDK behaviour
    aws_connect_timeout: float = Field(default=2.0, alias="AWS_CONNECT_TIMEOUT", gt=0)
    aws_read_timeout: float = Field(default=10.0, alias="AWS_READ_TIMEOUT", gt=0)

    @property
    def model_call_budget_seconds(self) -> float:
        """The longest one model call can take, retries and their waits included
        (adapters.model): a run's slice starts a model call only with this much time left."""
        return self.model_max_attempts * self.model_timeout_seconds + self.model_max_wait_seconds

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        origins = env.get("CORS_ALLOW_ORIGINS", "")
        env["CORS_ALLOW_ORIGINS"] = tuple(o.strip() for o in origins.split(",") if o.strip())  # type: ignore[assignment]
        operators = env.get("OPERATOR_PRINCIPAL_ARNS", "")
        env["OPERATOR_PRINCIPAL_ARNS"] = tuple(  # type: ignore[assignment]
            a.strip() for a in operators.split(",") if a.strip())
        plans = env.get("USAGE_PLAN_IDS") or "{}"
        try:
            env["USAGE_PLAN_IDS"] = json.loads(plans) if isinstance(plans, str) else plans
        except ValueError:
            raise SettingsError("invalid configuration: USAGE_PLAN_IDS is not JSON") from None
        if "AWS_REGION" not in env and "AWS_DEFAULT_REGION" in env:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"]
        try:
            return cls.model_validate(env)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"invalid configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read on first use."""
    return Settings.from_env()
