"""Login throttling: failures per account and per source IP slow down, then lock out.

Counted per e-mail address whether or not an account exists, so a lockout
says nothing about which addresses are registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import PutError, UpdateError

from agenthq.security.secrets import fingerprint
from agenthq.store import global_scope
from agenthq.store.items import LoginThrottle


@dataclass(frozen=True)
class ThrottlePolicy:
    kind: str
    free_failures: int  # failures allowed before any delay
    lockout_failures: int  # failures that lock the subject out
    window_seconds: int  # failures older than this are forgotten
    lockout_seconds: int
    first_delay_seconds: int = 5  # after the free failures; doubles with each further failure
    max_delay_seconds: int = 120


ACCOUNT = ThrottlePolicy("account", free_failures=5, lockout_failures=10, window_seconds=900, lockout_seconds=900)
SOURCE_IP = ThrottlePolicy("ip", free_failures=20, lockout_failures=100, window_seconds=900, lockout_seconds=900)


def subject_key(policy: ThrottlePolicy, value: str) -> str:
    return f"{policy.kind}#{fingerprint(policy.kind, value.lower())[:40]}"


def retry_after(policy: ThrottlePolicy, value: str, now: float) -> int | None:
    """Seconds to wait before another attempt is allowed, or None."""
    with global_scope():
        item = LoginThrottle.get_or_none(*LoginThrottle.key(subject_key(policy, value)))
    if item is None:
        return None
    if now - item.window_start > policy.window_seconds:
        return None
    failures = int(item.failures)
    if failures >= policy.lockout_failures:
        wait = item.last_failure + policy.lockout_seconds - now
    elif failures >= policy.free_failures:
        delay = policy.first_delay_seconds * 2 ** (failures - policy.free_failures)
        wait = item.last_failure + min(delay, policy.max_delay_seconds) - now
    else:
        return None
    return int(wait) + 1 if wait > 0 else None


def record_failure(policy: ThrottlePolicy, value: str, now: float) -> None:
    pk, sk = LoginThrottle.key(subject_key(policy, value))
    item = LoginThrottle(pk, sk)
    with global_scope():
        try:  # count it in the current window
            item.update(
                actions=[LoginThrottle.failures.add(1), LoginThrottle.last_failure.set(int(now))],
                condition=LoginThrottle.window_start >= int(now) - policy.window_seconds,
            )
            return
        except UpdateError:
            pass
        fresh = LoginThrottle(pk, sk, failures=1, window_start=int(now), last_failure=int(now),
                              expires_at=_epoch(now + policy.window_seconds + policy.lockout_seconds))
        try:  # or open a new window (unless a concurrent failure just did)
            fresh.save(condition=LoginThrottle.window_start.does_not_exist()
                       | (LoginThrottle.window_start < int(now) - policy.window_seconds))
        except PutError:
            item.update(actions=[LoginThrottle.failures.add(1), LoginThrottle.last_failure.set(int(now))])


def reset(policy: ThrottlePolicy, value: str) -> None:
    with global_scope():
        LoginThrottle(*LoginThrottle.key(subject_key(policy, value))).delete()


def _epoch(seconds: float) -> datetime:  # for the TTL attribute
    return datetime.fromtimestamp(seconds, UTC)
