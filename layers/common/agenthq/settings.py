"""Typed settings, read once from the environment.

Every knob of the application lives here. On AWS the values come from the
function's environment in template.yaml; the local cloud sets the same
variables. Nothing else in the package reads ``os.environ`` (boto3 and the
anthropic SDK read their own standard variables, such as
``AWS_ENDPOINT_URL_DYNAMODB`` and ``ANTHROPIC_BASE_URL``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agenthq import __version__


class SettingsError(RuntimeError):
    """The environment does not describe a valid configuration."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(alias="TABLE_NAME", min_length=3)
    region: str = Field(default="us-east-1", alias="AWS_REGION")
    state_machine_arn: str = Field(default="", alias="STATE_MACHINE_ARN")
    version: str = Field(default=__version__, alias="APP_VERSION")

    # HTTP edge
    max_request_bytes: int = Field(default=256 * 1024, alias="MAX_REQUEST_BYTES", gt=0)
    cors_allow_origins: tuple[str, ...] = Field(default=(), alias="CORS_ALLOW_ORIGINS")

    # AWS SDK behaviour
    aws_connect_timeout: float = Field(default=2.0, alias="AWS_CONNECT_TIMEOUT", gt=0)
    aws_read_timeout: float = Field(default=10.0, alias="AWS_READ_TIMEOUT", gt=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        origins = env.get("CORS_ALLOW_ORIGINS", "")
        env["CORS_ALLOW_ORIGINS"] = tuple(o.strip() for o in origins.split(",") if o.strip())  # type: ignore[assignment]
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
