"""The composition root: the one place where adapters are built and wired.

A Lambda process builds one ``Services`` on its first request (never at import)
and reuses it while warm; each adapter is built on first use, so a function
pays only for what it touches. Tests pass fakes as arguments —
``Services(settings, model=fake_model, tools=observed_tools)`` — like
cosmicpython's ``bootstrap``; a fake implements the same interface.

Domain modules do not import this module at run time (only for type hints):
they take ``Services`` from their caller, or something narrower (a ``Clock``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agenthq.settings import Settings, get_settings
from agenthq.store import configure

if TYPE_CHECKING:
    from agenthq.adapters.apigateway import GatewayKeys
    from agenthq.adapters.connections import Connections
    from agenthq.adapters.events import OperatorEvents
    from agenthq.adapters.mail import Mailer
    from agenthq.adapters.model import ModelClient
    from agenthq.adapters.queue import DeliveryQueue
    from agenthq.adapters.scheduler import Scheduler
    from agenthq.adapters.stepfunctions import Orchestrator
    from agenthq.mcp.connector import McpConnector
    from agenthq.mcp.vault import HeaderVault
    from agenthq.security.tokens import KeyStore, TokenSigner, TokenVerifier
    from agenthq.tools.registry import ToolRegistry


class Services:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time, *,
                 orchestrator: Orchestrator | None = None, gateway_keys: GatewayKeys | None = None,
                 model: ModelClient | None = None, tools: ToolRegistry | None = None,
                 operator_events: OperatorEvents | None = None, offboarding_jobs: Orchestrator | None = None,
                 connections: Connections | None = None, key_store: KeyStore | None = None,
                 mailer: Mailer | None = None, scheduler: Scheduler | None = None,
                 webhook_queue: DeliveryQueue | None = None, mcp_connector: McpConnector | None = None,
                 header_vault: HeaderVault | None = None) -> None:
        self.settings = settings
        self.clock = clock
        configure(settings)
        given = {"orchestrator": orchestrator, "gateway_keys": gateway_keys, "model": model, "tools": tools,
                 "operator_events": operator_events, "offboarding_jobs": offboarding_jobs,
                 "connections": connections, "key_store": key_store, "mailer": mailer,
                 "scheduler": scheduler, "webhook_queue": webhook_queue, "mcp_connector": mcp_connector,
                 "header_vault": header_vault}
        for name, adapter in given.items():
            if adapter is not None:
                self.__dict__[name] = adapter  # what cached_property would have built

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def client(self, service: str) -> Any:
        from agenthq.adapters.aws import make_client

        return make_client(service, self.settings)

    @cached_property
    def orchestrator(self) -> Orchestrator:
        from agenthq.adapters.stepfunctions import StepFunctionsOrchestrator

        return StepFunctionsOrchestrator(self.client("stepfunctions"), self.settings.state_machine_arn)

    @cached_property
    def offboarding_jobs(self) -> Orchestrator:
        from agenthq.adapters.stepfunctions import StepFunctionsOrchestrator

        return StepFunctionsOrchestrator(self.client("stepfunctions"), self.settings.offboarding_state_machine_arn)

    @cached_property
    def gateway_keys(self) -> GatewayKeys:
        from agenthq.adapters.apigateway import ApiGatewayKeys

        return ApiGatewayKeys(self.client("apigateway"), self.settings.usage_plan_ids)

    @cached_property
    def mailer(self) -> Mailer:
        from agenthq.adapters.mail import SesMailer

        return SesMailer(self.client("ses"), self.settings.verification_email_sender)

    @cached_property
    def operator_events(self) -> OperatorEvents:
        from agenthq.adapters.events import EventBridgeEvents

        return EventBridgeEvents(self.client("events"), self.settings.event_bus_name)

    @cached_property
    def scheduler(self) -> Scheduler:
        """EventBridge Scheduler's schedules of this deployment (SCHEDULE_GROUP_NAME)."""
        from agenthq.adapters.scheduler import EventBridgeScheduler

        s = self.settings
        return EventBridgeScheduler(self.client("scheduler"), s.schedule_group_name, s.schedule_target_arn,
                                    s.schedule_role_arn)

    @cached_property
    def connections(self) -> Connections:
        """The WebSocket API's @connections endpoint (LIVE_CONNECTIONS_URL)."""
        from agenthq.adapters.aws import make_client
        from agenthq.adapters.connections import ApiGatewayConnections

        s = self.settings
        # One attempt: the broadcaster backs off on 429 itself, and a 410 is an answer, not a failure.
        return ApiGatewayConnections(make_client("apigatewaymanagementapi", s, endpoint_url=s.live_connections_url or None,
                                                 max_attempts=1,
                                                 max_pool_connections=max(10, s.live_broadcast_parallelism)))

    @cached_property
    def webhook_queue(self) -> DeliveryQueue:
        """The webhook delivery queue (WEBHOOK_QUEUE_URL)."""
        from agenthq.adapters.queue import SqsDeliveryQueue

        return SqsDeliveryQueue(self.client("sqs"), self.settings.webhook_queue_url)

    @cached_property
    def key_store(self) -> KeyStore:
        from agenthq.security.tokens import KeyStore

        return KeyStore(self.client("ssm"), self.settings.jwt_signing_key_parameter,
                        self.settings.jwt_public_keys_parameter)

    @property
    def token_signer(self) -> TokenSigner:
        """Signs with the key store's current keys (rebuilt when they change: a rotation, a removal)."""
        from agenthq.security.tokens import TokenSigner

        s = self.settings
        keys = self.key_store.signing_keys()
        if getattr(self, "_signer_keys", None) is not keys:
            self._signer = TokenSigner(keys, s.jwt_issuer, s.jwt_audience, s.access_token_ttl_seconds)
            self._signer_keys = keys
        return self._signer

    @cached_property
    def model(self) -> ModelClient:
        from agenthq.adapters.model import AnthropicModel

        s = self.settings
        api_key = None
        if s.anthropic_api_key_secret_arn:
            secret = self.client("secretsmanager").get_secret_value(SecretId=s.anthropic_api_key_secret_arn)
            api_key = secret["SecretString"]
        return AnthropicModel(api_key=api_key, timeout_seconds=s.model_timeout_seconds,
                              max_attempts=s.model_max_attempts, max_wait_seconds=s.model_max_wait_seconds)

    @cached_property
    def tools(self) -> ToolRegistry:
        from agenthq.tools.catalog import run_registry

        return run_registry()

    @cached_property
    def mcp_connector(self) -> McpConnector:
        """MCP servers through the guarded HTTP client (agenthq.outbound)."""
        from agenthq.mcp.connector import SdkConnector
        from agenthq.outbound import OutboundPolicy

        s = self.settings
        policy = OutboundPolicy.from_settings(s, timeout_seconds=s.mcp_timeout_seconds,
                                              max_response_bytes=s.mcp_max_response_bytes)
        return SdkConnector(policy, timeout_seconds=s.mcp_timeout_seconds, max_result_chars=s.mcp_max_result_chars)

    @cached_property
    def header_vault(self) -> HeaderVault:
        """MCP servers' headers: one Secrets Manager secret each."""
        from agenthq.mcp.vault import SecretsManagerVault

        return SecretsManagerVault(self.client("secretsmanager"), self.settings.mcp_secret_prefix,
                                   self.settings.mcp_headers_key_id)

    def token_verifier(self, refresh: bool = False) -> TokenVerifier:
        from agenthq.security.tokens import TokenVerifier

        s = self.settings
        jwks = self.key_store.public_keys(refresh=refresh)
        if refresh or getattr(self, "_verifier_jwks", None) is not jwks:
            self._verifier = TokenVerifier(jwks, s.jwt_issuer, s.jwt_audience)
            self._verifier_jwks = jwks
        return self._verifier


_services: Services | None = None


def get_services() -> Services:
    """The process's services, built on first use."""
    global _services
    if _services is None:
        _services = Services(get_settings())
    return _services


def set_services(services: Services | None) -> None:
    """Replace the process's services (tests and the local cloud)."""
    global _services
    _services = services
