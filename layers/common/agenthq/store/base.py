"""The table's base model and the binding of models to a configured table."""

from __future__ import annotations

from pynamodb.attributes import DiscriminatorAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.connection import TableConnection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from agenthq.settings import Settings


class Gsi1(GlobalSecondaryIndex):
    """Secondary access paths (a user's memberships, runs of an agent, ...)."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class BaseItem(Model):
    """Every item of the table. ``type`` tells which model an item is."""

    class Meta:
        table_name: str | None = None  # bound by configure()
        region = "us-east-1"
        max_retry_attempts = 3
        connect_timeout_seconds = 2
        read_timeout_seconds = 10

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    type = DiscriminatorAttribute()
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    gsi1 = Gsi1()

    @classmethod
    def _get_connection(cls) -> TableConnection:
        # All item types live in one table: share one connection (and one
        # botocore client) instead of building one per model class.
        return Model._get_connection.__func__(BaseItem)  # type: ignore[attr-defined]


def configure(settings: Settings) -> None:
    """Bind the models to the settings' table. Called by the composition root."""
    meta = BaseItem.Meta
    if (meta.table_name, meta.region) != (settings.table_name, settings.region):
        meta.table_name = settings.table_name
        meta.region = settings.region
        meta.connect_timeout_seconds = int(settings.aws_connect_timeout)
        meta.read_timeout_seconds = int(settings.aws_read_timeout)
        BaseItem._connection = None


def ws_pk(workspace_id: str, *parts: str) -> str:
    """A partition key owned by a workspace: ``WS#<id>`` or ``WS#<id>#<parts>``."""
    if not workspace_id or "#" in workspace_id:
        raise ValueError("invalid workspace id")
    return "#".join(("WS", workspace_id, *parts))
