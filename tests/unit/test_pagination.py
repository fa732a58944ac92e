"""List cursors are opaque, and only ever point into the caller's own data."""

from __future__ import annotations

import base64
import json

import pytest

from agenthq.errors import InvalidRequest
from agenthq.pagination import decode_cursor, encode_cursor, limit_param

WS = "01AAAAAAAAAAAAAAAAAAAAAAAA"


def cursor_of(key: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def test_a_cursor_round_trips():
    key = {"pk": {"S": f"WS#{WS}"}, "sk": {"S": "MEMBER#01B"}}
    assert decode_cursor(encode_cursor(key), partition=f"WS#{WS}", sk_prefix="MEMBER#") == key
    assert encode_cursor(None) is None and decode_cursor(None, partition="x") is None


@pytest.mark.parametrize("cursor", [
    "not base64 !!",
    cursor_of(["a"]),
    cursor_of({}),
    cursor_of({"pk": {"S": "WS#01OTHERWORKSPACE00000000"}, "sk": {"S": "MEMBER#1"}}),  # another workspace
    cursor_of({"pk": {"S": f"WS#{WS}"}, "sk": {"S": "APIKEY#1"}}),  # outside the listed prefix
    cursor_of({"pk": {"S": f"WS#{WS}"}, "sk": {"N": "1"}}),  # wrong attribute type
    cursor_of({"pk": {"S": f"WS#{WS}"}, "sk": {"S": "MEMBER#1"}, "extra": {"S": "x"}}),  # unknown key
    cursor_of({"pk": {"S": f"WS#{WS}"}}),  # incomplete
])
def test_foreign_or_broken_cursors_are_refused(cursor):
    with pytest.raises(InvalidRequest) as err:
        decode_cursor(cursor, partition=f"WS#{WS}", sk_prefix="MEMBER#")
    assert err.value.details == [{"field": "cursor", "message": "invalid cursor"}]


def test_limits_are_bounded():
    assert limit_param(None) == 50 and limit_param(100) == 100
    for bad in (0, 101, -1):
        with pytest.raises(InvalidRequest):
            limit_param(bad)
