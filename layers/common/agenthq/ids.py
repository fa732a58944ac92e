"""ULIDs: 128-bit ids that sort by creation time (Crockford base32, 26 chars)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"  # also in the API's schema (an id filter)
_PATTERN = re.compile(ID_PATTERN)
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, randomness) of the previous id, for monotonicity


def new_id(now_ms: int | None = None) -> str:
    """A new ULID. Ids made in the same millisecond by this process still sort
    in the order they were made (the random part is incremented)."""
    global _last
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms:
            ms, rand = last_ms, last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
        _last = (ms, rand)
    return _encode((ms << 80) | (rand & ((1 << 80) - 1)))


def derived_id(*parts: str) -> str:
    """A ULID-shaped id derived from ``parts``: the same parts always give the
    same id (for records a retried step must not create twice). It carries the
    time of its first part when that is a ULID, so it sorts near it."""
    digest = int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:10], "big")
    ms = id_time_ms(parts[0]) if parts and is_id(parts[0]) else 0
    return _encode((ms << 80) | digest)


def _encode(value: int) -> str:
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def is_id(value: str) -> bool:
    return bool(_PATTERN.match(value or ""))


def time_prefix(ms: int) -> str:
    """The first 10 characters of every ULID made at ``ms`` (Unix ms): ids
    made between two times sort between their prefixes."""
    return _encode(ms << 80)[:10]


def id_time_ms(value: str) -> int:
    """The creation time (Unix ms) encoded in a ULID."""
    n = 0
    for ch in value[:10]:
        n = n * 32 + _ALPHABET.index(ch)
    return n
