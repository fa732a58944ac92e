"""boto3 clients with AgentHQ's timeouts and retry mode.

Endpoints are boto3's business: on AWS the defaults, in the local cloud the
standard ``AWS_ENDPOINT_URL_<SERVICE>`` variables (or moto's interception).
"""

from __future__ import annotations

import threading
from typing import Any

from agenthq.settings import Settings

_lock = threading.Lock()


def make_client(service: str, settings: Settings, *, endpoint_url: str | None = None, max_attempts: int = 3,
                max_pool_connections: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
    )
    with _lock:  # boto3's default session is not safe to share while creating clients
        return boto3.client(service, config=config, endpoint_url=endpoint_url)  # type: ignore[call-overload]
