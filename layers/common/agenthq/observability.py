"""Logging, metrics and tracing: the one place Powertools is configured.

Service name, log level, metric namespace and tracing on/off come from the
standard Powertools environment variables (POWERTOOLS_SERVICE_NAME,
POWERTOOLS_LOG_LEVEL, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_TRACE_DISABLED,
POWERTOOLS_METRICS_DISABLED), set in template.yaml and by the local cloud.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
tracer = Tracer()

__all__ = ["logger", "metrics", "tracer", "MetricUnit"]
