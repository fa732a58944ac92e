"""The table's base model, its binding to a configured table, and tenant scoping.

Tenant scoping: when ``TENANT_ROLE_ARN`` is set (on AWS), code running inside
``tenant_scope(workspace_id)`` talks to DynamoDB with credentials of the tenant
role assumed with the session tag ``workspace_id=<id>``; that role's policy
only allows partition keys ``WS#<id>`` and ``WS#<id>#…`` (IAM
``dynamodb:LeadingKeys``), so even a bug that builds another workspace's key
is refused by DynamoDB. Global items are reached inside ``global_scope()``
with the function's own role. Without a tenant role (tests that don't set one)
both scopes use the function's own credentials: the switch is a no-op.
"""

from __future__ import annotations

import builtins
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from pynamodb.attributes import DiscriminatorAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from agenthq.errors import NotFound
from agenthq.settings import Settings
from agenthq.usage import infra

_Item = TypeVar("_Item", bound="BaseItem")
_T = TypeVar("_T")

#: DynamoDB's key size limits (bytes, UTF-8): a longer key can name no item.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024


class Gsi1(GlobalSecondaryIndex):  # type: ignore[type-arg,no-untyped-call]  # pynamodb's generic Index
    """Secondary access paths (a user's memberships, runs of an agent, ...)."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


_scoped_connection: ContextVar[TableConnection | None] = ContextVar("agenthq_tenant_connection", default=None)


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
    def get_or_none(cls: builtins.type[_Item], hash_key: str, range_key: str, *, consistent_read: bool = True,
                    attributes: Sequence[str] | None = None) -> _Item | None:
        """The item at this key, or None. A key DynamoDB could not store (over
        its size limits) names no item, so it is None too, not an error.
        ``attributes``: read only these (a role may be allowed no more, ``dynamodb:Attributes``)."""
        if len(hash_key.encode()) > MAX_PARTITION_KEY_BYTES or len(range_key.encode()) > MAX_SORT_KEY_BYTES:
            return None
        try:
            return cls.get(hash_key, range_key, consistent_read=consistent_read,
                           attributes_to_get=list(attributes) if attributes else None)
        except DoesNotExist:
            return None

    @classmethod
    def get_or_404(cls: builtins.type[_Item], hash_key: str, range_key: str, message: str | None = None, *,
                   consistent_read: bool = True) -> _Item:
        """The item at this key, or :class:`NotFound` (the API's 404) with ``message``."""
        item = cls.get_or_none(hash_key, range_key, consistent_read=consistent_read)
        if item is None:
            raise NotFound(message)
        return item

    def owned_partitions(self) -> list[str]:
        """Other partitions whose items belong to this item (deleted with it)."""
        return []

    @classmethod
    def _get_connection(cls) -> TableConnection:
        # Inside tenant_scope(): the tenant's credentials. Otherwise one shared
        # connection (and botocore client) for every item type of the table.
        scoped = _scoped_connection.get()
        if scoped is not None:
            return scoped
        if BaseItem.Meta.table_name is None:  # first use in this process: bind to the settings' table
            from agenthq.settings import get_settings

            configure(get_settings())
        return _model_connection()


class _MeteredConnection(Connection):
    """pynamodb's Connection, telling the current run step's meter what each call
    consumed (pynamodb already asks for ``ReturnConsumedCapacity=TOTAL``)."""

    def dispatch(self, operation_name: str, operation_kwargs: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = super().dispatch(operation_name, operation_kwargs)
        if data:
            infra.consumed(operation_name, data.get("ConsumedCapacity"))
        return data


def _metered(table: TableConnection) -> TableConnection:
    # The subclass adds behaviour only, no state: swapping the class keeps pynamodb's own construction.
    if type(table.connection) is Connection:
        table.connection.__class__ = _MeteredConnection
    return table


def _model_connection() -> TableConnection:
    """The shared connection pynamodb's own ``Model._get_connection`` gives BaseItem."""
    connection: TableConnection = Model._get_connection.__func__(BaseItem)  # type: ignore[attr-defined]
    return _metered(connection)


def configure(settings: Settings) -> None:
    """Bind the models to the settings' table. Called by the composition root."""
    meta = BaseItem.Meta
    if (meta.table_name, meta.region) != (settings.table_name, settings.region):
        meta.table_name = settings.table_name
        meta.region = settings.region
        meta.connect_timeout_seconds = int(settings.aws_connect_timeout)
        meta.read_timeout_seconds = int(settings.aws_read_timeout)
        BaseItem._connection = None
    _tenancy.configure(settings)


def ws_pk(workspace_id: str, *parts: str) -> str:
    """A partition key owned by a workspace: ``WS#<id>`` or ``WS#<id>#<parts>``."""
    if not workspace_id or "#" in workspace_id:
        raise ValueError("invalid workspace id")
    return "#".join(("WS", workspace_id, *parts))


def get_many(*keys: tuple[str, str], attributes: Sequence[str] | None = None) -> list[BaseItem]:
    """Items of any types in one BatchGetItem round trip (missing keys are skipped);
    with ``attributes``, only those (``type`` among them, to tell the items apart)."""
    return list(BaseItem.batch_get(keys, attributes_to_get=list(attributes) if attributes else None))


def partition_page(pk: str, after: str | None = None, limit: int = 100) -> tuple[list[BaseItem], bool]:
    """One page (up to ``limit``) of the items of partition ``pk`` after sort key
    ``after``, of every type, and whether more follow. Unlike a model's query,
    it does not filter on ``type``: items only ever written by updates (counters,
    quotas) have none, and come back as plain ``BaseItem``."""
    data = BaseItem._get_connection().query(pk, range_key_condition=BaseItem.sk > after if after else None,
                                            limit=limit, consistent_read=True)
    return [BaseItem.from_raw_data(raw) for raw in data.get("Items", [])], bool(data.get("LastEvaluatedKey"))


def transaction(**kwargs: Any) -> TransactWrite:
    """A TransactWrite on the connection of the current scope."""
    return TransactWrite(connection=BaseItem._get_connection().connection, **kwargs)


def retry_transaction(attempt: Callable[[], _T], explain: Callable[[TransactWriteError], None], *,
                      attempts: int, exhausted: Callable[[], Exception],
                      sleep: Callable[[float], None] = time.sleep) -> _T:
    """Run ``attempt`` (one transaction). When DynamoDB cancels it, ``explain``
    raises what the caller should see, or returns: then it was a conflict with
    a concurrent writer, and the attempt is repeated after a jittered backoff.
    After ``attempts`` rounds, raises ``exhausted()``."""
    for round_ in range(attempts):
        try:
            return attempt()
        except TransactWriteError as exc:
            explain(exc)
            if round_ + 1 < attempts:
                sleep(random.uniform(0.01, 0.05) * (round_ + 1))  # nosec B311  # backoff jitter, not a secret
    raise exhausted()


# --------------------------------------------------------------------------- tenant scoping


class _Tenancy:
    """Assumes the tenant role per workspace and caches the scoped connections."""

    RENEW_BEFORE_SECONDS = 120

    def __init__(self) -> None:
        self.role_arn = ""
        self.settings: Settings | None = None
        self._sts: Any = None
        self._lock = threading.Lock()
        self._connections: dict[str, tuple[TableConnection, float]] = {}
        self._session: Any = None  # the botocore session tenant clients are made from
        self._session_lock = threading.Lock()

    def configure(self, settings: Settings) -> None:
        with self._lock:
            self.settings = settings
            self.role_arn = settings.tenant_role_arn
            self._sts = None
            self._connections.clear()

    def forget(self) -> None:
        """Unconfigured again: the next tenant scope configures itself from the process's settings."""
        with self._lock:
            self.settings = None
            self.role_arn = ""
            self._sts = None
            self._connections.clear()

    def connection_for(self, workspace_id: str) -> TableConnection | None:
        if self.settings is None:  # first use in this process
            from agenthq.settings import get_settings

            configure(get_settings())
        if not self.role_arn:
            return None
        now = time.time()
        with self._lock:
            cached = self._connections.get(workspace_id)
            if cached and cached[1] - self.RENEW_BEFORE_SECONDS > now:
                return cached[0]
        credentials = self._assume(workspace_id)
        base = _model_connection()
        if BaseItem.Meta.table_name is None:
            raise RuntimeError("the store is not configured (no table name)")
        connection = TableConnection(
            BaseItem.Meta.table_name,
            region=BaseItem.Meta.region,
            connect_timeout_seconds=BaseItem.Meta.connect_timeout_seconds,
            read_timeout_seconds=BaseItem.Meta.read_timeout_seconds,
            max_retry_attempts=BaseItem.Meta.max_retry_attempts,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            meta_table=base.get_meta_table(),
        )
        _metered(connection)
        connection.connection._client = self._client(connection.connection, credentials)
        expires = credentials["Expiration"].timestamp()
        with self._lock:
            self._connections[workspace_id] = (connection, expires)
        return connection

    def _client(self, connection: Connection, credentials: dict[str, Any]) -> Any:
        """The DynamoDB client of a tenant connection, made from one botocore session per process.

        Left to itself, pynamodb gives each connection a botocore session of its own, which loads
        botocore's endpoint and DynamoDB models again: about 0.1 s of CPU for each workspace a container
        meets (every signup, every workspace's first request to each container). A session is not safe
        to create clients from concurrently, hence the lock. The client is configured as pynamodb would
        (its ``client`` property keeps a client that has credentials)."""
        import botocore.client
        import botocore.session

        config = botocore.client.Config(
            parameter_validation=False,
            connect_timeout=BaseItem.Meta.connect_timeout_seconds,
            read_timeout=BaseItem.Meta.read_timeout_seconds,
            max_pool_connections=connection._max_pool_connections,
            retries={"total_max_attempts": 1 + int(BaseItem.Meta.max_retry_attempts), "mode": "standard"},
        )
        with self._session_lock:
            if self._session is None:
                self._session = botocore.session.get_session()
            return self._session.create_client(
                "dynamodb", BaseItem.Meta.region, endpoint_url=connection.host, config=config,
                aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"])

    def _assume(self, workspace_id: str) -> dict[str, Any]:
        if self._sts is None:
            from agenthq.adapters.aws import make_client

            if self.settings is None:
                raise RuntimeError("the store is not configured (no settings)")
            self._sts = make_client("sts", self.settings)
        response = self._sts.assume_role(
            RoleArn=self.role_arn,
            RoleSessionName=f"ws-{workspace_id}"[:64],
            DurationSeconds=900,
            Tags=[{"Key": "workspace_id", "Value": workspace_id}],
        )
        return dict(response["Credentials"])


_tenancy = _Tenancy()


@contextmanager
def tenant_scope(workspace_id: str) -> Iterator[None]:
    """Data access inside is limited (by IAM, on AWS) to this workspace's keys."""
    ws_pk(workspace_id)  # validates the id
    token = _scoped_connection.set(_tenancy.connection_for(workspace_id))
    try:
        yield
    finally:
        _scoped_connection.reset(token)


@contextmanager
def global_scope() -> Iterator[None]:
    """Data access inside uses the function's own role (global items)."""
    token = _scoped_connection.set(None)
    try:
        yield
    finally:
        _scoped_connection.reset(token)
