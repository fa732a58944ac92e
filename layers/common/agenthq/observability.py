"""Logging, metrics, tracing and error tracking: the one place they are configured.

Service name, log level, metric namespace and tracing on/off come from the
standard Powertools environment variables (POWERTOOLS_SERVICE_NAME,
POWERTOOLS_LOG_LEVEL, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_TRACE_DISABLED,
POWERTOOLS_METRICS_DISABLED), set in template.yaml and by the local cloud. The
namespace is template.yaml's ``MetricsNamespace`` parameter: the functions'
environment, the alarms and the dashboard all take it from there.

The metrics the application emits are named below (``RUNS_STARTED`` …), each
added where its event happens (after the write that makes it true), and
published at the end of each invocation: by ``publish_metrics`` (the HTTP
functions, through ``agenthq.http``) or Powertools' ``log_metrics``. Their only
dimension is ``service``. The dashboard and the alarms in template.yaml use
these names; a test keeps the two in step.

The tracer is built on first use: constructing it imports the X-Ray SDK
(~0.4 s), which functions that don't trace should not pay at cold start.

Error tracking: when ``SENTRY_DSN`` is set (the stack's ``SentryDsn``
parameter), Sentry is started once, when this module is first imported — at
cold start, before the first invocation, as its Lambda integration needs — with
the Lambda integration (exceptions a handler raises) and the logging one
(``logger.exception`` / ``logger.error``, e.g. the HTTP edge's last-resort 500).
When it is not set ``sentry_sdk`` is never imported. ``SENTRY_DSN`` and
``SENTRY_ENVIRONMENT`` are Sentry's own variables, read here as Powertools
reads its own.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from agenthq import __version__

logger = Logger()
metrics = Metrics()
# Most invocations add no metric; Powertools' log_metrics (run_steps, period_reset) warns on each of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
_tracer: Any = None

# ---------------------------------------------------------------------- the application's metrics
RUN_STEPS = "RunSteps"  # a step of the run state machine ran (run_steps)
RUNS_STARTED = "RunsStarted"  # a run left the queue and started (run.started stored)
RUNS_ENDED = {  # a run ended (its final status stored)
    "succeeded": "RunsSucceeded",
    "failed": "RunsFailed",
    "cancelled": "RunsCancelled",
    "timed_out": "RunsTimedOut",
}
MODEL_CALLS = "ModelCalls"  # a model call answered and committed
MODEL_COST = "ModelCostMicroUSD"  # its cost, micro-dollars
MODEL_TOKENS = {  # its tokens, per class the price table bills
    "input_tokens": "ModelInputTokens",
    "output_tokens": "ModelOutputTokens",
    "cache_write_tokens": "ModelCacheWriteTokens",
    "cache_read_tokens": "ModelCacheReadTokens",
}
MODEL_THROTTLES = "ModelThrottles"  # the model API answered 429 (rate limited) or 529 (overloaded)
REQUESTS_RATE_LIMITED = "RequestsRateLimited"  # a function answered 429 rate_limited (e.g. login throttling)
REQUESTS_QUOTA_EXCEEDED = "RequestsQuotaExceeded"  # a function answered 429 quota_exceeded (runs per day …)
USAGE_ALERTS = "UsageAlerts"  # a workspace crossed 80% or 100% of a limit (the alert stored)
BUDGET_ALERTS = "BudgetAlerts"  # … of its model budget
BROADCAST_FAILURES = "BroadcastFailures"  # stream records the broadcaster handed back to be retried

#: Every name above: what template.yaml's alarms and dashboard may refer to in the namespace.
APPLICATION_METRICS = frozenset({
    RUN_STEPS, RUNS_STARTED, *RUNS_ENDED.values(), MODEL_CALLS, MODEL_COST, *MODEL_TOKENS.values(),
    MODEL_THROTTLES, REQUESTS_RATE_LIMITED, REQUESTS_QUOTA_EXCEEDED, USAGE_ALERTS, BUDGET_ALERTS,
    BROADCAST_FAILURES,
})


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the application metric ``name`` (one of the names above)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_model_tokens(tokens: Mapping[str, int]) -> None:
    """The tokens of one committed model call, per class (``TokenUsage.view()``)."""
    for field, name in MODEL_TOKENS.items():
        count(name, tokens.get(field, 0))


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def publish_metrics(handler: _Handler) -> _Handler:
    """Publish the metrics an invocation added, when it ends (raised or not).

    Unlike Powertools' ``log_metrics`` it says nothing when there are none (most
    requests add none), and with metrics disabled (the local cloud) it drops
    them instead of letting them pile up."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        finally:
            if metrics.metric_set:
                if is_metrics_disabled():
                    metrics.clear_metrics()
                else:
                    metrics.flush_metrics()

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------- tracing


def __getattr__(name: str) -> Any:
    if name == "tracer":
        global _tracer
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer()
        return _tracer
    raise AttributeError(name)


# ---------------------------------------------------------------------- error tracking


def _start_error_tracking(environ: Mapping[str, str]) -> bool:
    """Start Sentry if ``SENTRY_DSN`` is set; True if it was started."""
    dsn = environ.get("SENTRY_DSN", "").strip()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.aws_lambda import AwsLambdaIntegration

    sentry_sdk.init(
        dsn=dsn,
        release=f"agenthq@{__version__}",
        integrations=[AwsLambdaIntegration(timeout_warning=True)],
        # Not Sentry's library integrations (anthropic, boto3, fastapi …): each one imports its library
        # at init, and the anthropic SDK alone costs ~2.6 s of cold start in functions that never call it.
        auto_enabling_integrations=False,
        send_default_pii=False,  # no request bodies, headers, IPs or user ids
        include_local_variables=False,  # a frame's variables may hold a password, a token or an API key
        traces_sample_rate=0.0,  # errors only: tracing is X-Ray's
    )
    return True


error_tracking = _start_error_tracking(os.environ)

__all__ = ["logger", "metrics", "tracer", "MetricUnit", "count", "count_model_tokens",  # noqa: F822 - tracer: __getattr__
           "publish_metrics", "error_tracking"]
