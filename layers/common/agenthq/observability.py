"""Logging, metrics and tracing: the one place Powertools is configured.

Service name, log level, metric namespace and tracing on/off come from the
standard Powertools environment variables (POWERTOOLS_SERVICE_NAME,
POWERTOOLS_LOG_LEVEL, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_TRACE_DISABLED,
POWERTOOLS_METRICS_DISABLED), set in template.yaml and by the local cloud.

The tracer is built on first use: constructing it imports the X-Ray SDK
(~0.4 s), which functions that don't trace should not pay at cold start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
_tracer: Any = None


def __getattr__(name: str) -> Any:
    if name == "tracer":
        global _tracer
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer()
        return _tracer
    raise AttributeError(name)


__all__ = ["logger", "metrics", "tracer", "MetricUnit"]  # noqa: F822 - tracer is built on first use (__getattr__)
