"""Opaque list cursors: lists answer ``{"items": [...], "next_cursor": "..."}``.

A cursor is DynamoDB's LastEvaluatedKey, base64url-encoded. It is checked on
the way back in: its keys must lie in the partition (and sort-key prefix) the
caller's query reads, so a forged or foreign cursor can neither read
elsewhere nor make DynamoDB fail (it is a 400 instead).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel
from pynamodb.exceptions import QueryError

from agenthq.errors import InvalidRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

Key = dict[str, dict[str, str]]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


def encode_cursor(last_evaluated_key: Key | None) -> str | None:
    if not last_evaluated_key:
        return None
    raw = json.dumps(last_evaluated_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, partition: str, sk_prefix: str = "", index: str | None = None) -> Key | None:
    """The start key a cursor stands for, if it lies within ``partition``
    (the table's pk, or the index's partition key for ``index="gsi1"``)."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid() from None
    names = {"pk", "sk"} | ({"gsi1pk", "gsi1sk"} if index else set())
    if not isinstance(key, dict) or set(key) != names:
        raise _invalid()
    values = {}
    for name, value in key.items():
        if not isinstance(value, dict) or list(value) != ["S"] or not isinstance(value["S"], str):
            raise _invalid()
        values[name] = value["S"]
    partition_name, sort_name = ("gsi1pk", "gsi1sk") if index else ("pk", "sk")
    if values[partition_name] != partition or not values[sort_name].startswith(sk_prefix):
        raise _invalid()
    if index and not (values["pk"] == partition or values["pk"].startswith(partition.split("#", 2)[0] + "#")):
        raise _invalid()
    return key


def page(
    run_query: Callable[[Key | None], Any],
    view: Callable[[Any], dict[str, Any]],
    cursor: str | None,
    *,
    partition: str,
    sk_prefix: str = "",
    index: str | None = None,
    keep: Callable[[Any], bool] | None = None,
) -> Page:
    """Run a PynamoDB query from the cursor's position and shape one page."""
    results = run_query(decode_cursor(cursor, partition=partition, sk_prefix=sk_prefix, index=index))
    try:
        items: Iterable[Any] = list(results)
    except QueryError as exc:
        if "ValidationException" in str(exc.cause_response_code or exc):
            raise _invalid() from None
        raise
    return Page(items=[view(i) for i in items if keep is None or keep(i)],
                next_cursor=encode_cursor(results.last_evaluated_key))


def workspace_page(model: Any, workspace_id: str, sk_prefix: str, view: Callable[[Any], dict[str, Any]],
                   cursor: str | None, limit: int, **query: Any) -> Page:
    """A page of the workspace's own items of one kind (``WS#<id>``, sk ``<prefix>…``)."""
    partition = f"WS#{workspace_id}"
    return page(lambda start: model.query(partition, model.sk.startswith(sk_prefix), limit=limit,
                                          last_evaluated_key=start, **query),
                view, cursor, partition=partition, sk_prefix=sk_prefix)


def limit_param(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(details=[{"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"}])
    return limit


def _invalid() -> InvalidRequest:
    return InvalidRequest("The cursor is not valid.", details=[{"field": "cursor", "message": "invalid cursor"}])
