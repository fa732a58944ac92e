"""Where a server's header values live: one Secrets Manager secret per server.

The table holds only the secret's ARN and the header *names*; the values are in
the secret, encrypted with the stack's own KMS key (template.yaml,
``McpHeadersKey``), which only the MCP function and the run worker may use —
through Secrets Manager only (``kms:ViaService``) — and whose secrets they reach
only under the stack's ``<stack>/mcp/`` prefix. Offboarding deletes a
workspace's secrets (``<prefix><workspace>/``) without recovery.
"""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

#: botocore's loggers that write request and response bodies at DEBUG (a secret's value with them).
WIRE_LOGGERS = ("botocore.endpoint", "botocore.parsers")
_in_vault = threading.local()


class _NotWhileInTheVault(logging.Filter):
    """Drops botocore's wire records made on a thread while it talks to the vault, whatever the log
    level (a function run at DEBUG would otherwise log header values in clear)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_in_vault, "depth", 0)


_FILTER = _NotWhileInTheVault()


@contextmanager
def quiet_wire() -> Iterator[None]:
    for name in WIRE_LOGGERS:
        wire = logging.getLogger(name)
        if _FILTER not in wire.filters:
            wire.addFilter(_FILTER)
    _in_vault.depth = getattr(_in_vault, "depth", 0) + 1
    try:
        yield
    finally:
        _in_vault.depth -= 1


class HeaderVault(ABC):
    """Keeps a server's headers secret."""

    @abstractmethod
    def put(self, workspace_id: str, server_id: str, headers: Mapping[str, str]) -> str:
        """Store ``headers``; returns the reference to keep (the secret's ARN)."""

    @abstractmethod
    def get(self, ref: str) -> dict[str, str]:
        """The headers stored under ``ref``."""

    @abstractmethod
    def delete(self, ref: str) -> None:
        """Forget the headers under ``ref`` at once (no recovery window). Idempotent."""

    @abstractmethod
    def forget_workspace(self, workspace_id: str) -> int:
        """Delete every secret of the workspace (offboarding); how many there were."""


class SecretsManagerVault(HeaderVault):
    def __init__(self, client: Any, prefix: str, kms_key_id: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.kms_key_id = kms_key_id

    def name(self, workspace_id: str, server_id: str) -> str:
        return f"{self.prefix}{workspace_id}/{server_id}"

    def put(self, workspace_id: str, server_id: str, headers: Mapping[str, str]) -> str:
        params: dict[str, Any] = {"Name": self.name(workspace_id, server_id),
                                  "SecretString": json.dumps(dict(headers)),
                                  "Description": "The headers AgentHQ sends to one MCP server."}
        if self.kms_key_id:
            params["KmsKeyId"] = self.kms_key_id
        with quiet_wire():
            return str(self.client.create_secret(**params)["ARN"])  # a new server id each time: never an existing one

    def get(self, ref: str) -> dict[str, str]:
        with quiet_wire():
            value = json.loads(self.client.get_secret_value(SecretId=ref)["SecretString"])
        return {str(k): str(v) for k, v in value.items()}

    def delete(self, ref: str) -> None:
        try:
            self.client.delete_secret(SecretId=ref, ForceDeleteWithoutRecovery=True)
        except self.client.exceptions.ResourceNotFoundException:
            pass

    def forget_workspace(self, workspace_id: str) -> int:
        prefix = f"{self.prefix}{workspace_id}/"
        deleted = 0
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [prefix]}], "MaxResults": 100}
            if token:
                params["NextToken"] = token
            page = self.client.list_secrets(**params)
            for secret in page.get("SecretList", []):
                if str(secret.get("Name", "")).startswith(prefix):  # the filter matches prefixes; be exact
                    self.delete(secret["ARN"])
                    deleted += 1
            token = page.get("NextToken")
            if not token:
                return deleted
