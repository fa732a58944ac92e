"""Item sizes as DynamoDB counts them, and the attribute that keeps JSON small.

DynamoDB refuses an item over 400 KB (``ValidationException``), counting every
attribute's name and value in bytes: strings and names as UTF-8, numbers by
their significant digits, lists and maps with 3 bytes of overhead and 1 byte
per element. A write that hits the limit fails whole, after the request that
caused it was long accepted; so whatever a tenant can make large is measured
here, in those bytes, and refused with a 413 *before* anything is written.

JSON attributes are stored as UTF-8 text (:class:`Utf8JSONAttribute`):
pynamodb's ``JSONAttribute`` escapes every non-ASCII character (``é`` becomes
6 bytes, an emoji 12 — a surrogate pair), which let a text that fits as UTF-8
overflow as an item. Items written the old way read back the same: ``\\u``
escapes are JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pynamodb.attributes import JSONAttribute
from pynamodb.models import Model

from agenthq.errors import PayloadTooLarge

#: DynamoDB's item size limit (names and values, UTF-8).
MAX_ITEM_BYTES = 400 * 1024


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_json(value: Any) -> str:
    """``value`` as JSON text that UTF-8 can encode: characters as themselves, except a lone surrogate
    (a Python string can hold one; UTF-8 cannot), which keeps its ``\\u`` escape."""
    text = json.dumps(value, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Utf8JSONAttribute(JSONAttribute):
    """JSON stored as UTF-8 text, not ``\\u`` escapes (:func:`utf8_json`)."""

    def serialize(self, value: Any) -> str | None:
        return None if value is None else utf8_json(value)


def text_bytes(text: str) -> int:
    """``text`` in bytes as DynamoDB counts a string (UTF-8; a lone surrogate as 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


def json_text_bytes(text: str) -> int:
    """What ``text`` adds inside a :class:`Utf8JSONAttribute`'s JSON (escapes included, quotes not)."""
    return text_bytes(utf8_json(text)) - 2


def _value_bytes(value: dict[str, Any]) -> int:
    (kind, data), = value.items()
    if kind == "S":
        return text_bytes(data)
    if kind == "N":  # 1 byte per two significant digits, plus 1: counted from above
        return len(data) // 2 + 2
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(text_bytes(s) for s in data)
    if kind == "NS":
        return sum(len(n) // 2 + 2 for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(_value_bytes(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(text_bytes(k) + _value_bytes(v) + 1 for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_bytes(item: Model) -> int:
    """The item's size as DynamoDB counts it (an upper bound for numbers)."""
    return sum(text_bytes(name) + _value_bytes(value) for name, value in item.serialize(null_check=False).items())


def room_in(item: Model) -> int:
    """How many more bytes the item could hold (negative when it is over the limit)."""
    return MAX_ITEM_BYTES - item_bytes(item)


def ensure_fits(item: Model, field: str, what: str) -> None:
    """Refuse (413 ``payload_too_large``, naming ``field``) an item DynamoDB would not store.
    ``what`` says what did not fit, for people."""
    size = item_bytes(item)
    if size > MAX_ITEM_BYTES:
        raise PayloadTooLarge(
            f"{what} is too large to store: {size:,} bytes where at most {MAX_ITEM_BYTES:,} fit "
            "(counted as UTF-8; non-ASCII characters take 2 to 4 bytes).",
            details=[{"field": field, "in": "body", "message": f"too large by {size - MAX_ITEM_BYTES:,} bytes"}])
