"""boto3 clients with AgentHQ's timeouts and retry mode.

Endpoints are boto3's business: on AWS the defaults, in the local cloud the
standard ``AWS_ENDPOINT_URL_<SERVICE>`` variables (or moto's interception).
"""

from __future__ import annotations

import threading
from typing import Any

from agenthq.settings import Settings

_lock = threading.Lock()


def make_client(service: str, settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        retries={"mode": "standard", "max_attempts": 3},
    )
    with _lock:  # boto3's default session is not safe to share while creating clients
        return boto3.client(service, config=config)  # type: ignore[call-overload]  # any service by name
