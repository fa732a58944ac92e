"""Request rates of the unauthenticated auth routes, per source address and per account.

API Gateway's per-method throttles are one bucket per method shared by every
caller: one client retrying at 60 requests a second empties it for everyone.
So signup, login and refresh also count requests per caller, in code: per
source address (every auth request of that address) and per account (the
e-mail address of a signup or login, the user of a refresh). A caller past
either limit is answered 429 ``rate_limited`` with ``Retry-After`` before any
other work, and another caller is not affected. On AWS a WAF web ACL's
rate-based rules stop a flood per address before it reaches the stage
(template.yaml, ``WebAcl``).

A fixed window per subject: one conditional UpdateItem (``hits`` below the
limit) per request, on an item that expires with its window. Subjects are
stored as fingerprints, never as the address or e-mail itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import UpdateError

from agenthq.errors import RateLimited
from agenthq.security.secrets import fingerprint
from agenthq.store import global_scope
from agenthq.store.items import RequestCount


@dataclass(frozen=True)
class RequestRate:
    kind: str
    limit: int  # requests per window
    window_seconds: int


# Generous for people (a page of users behind one NAT signing in, a CLI refreshing before each command),
# far below what empties the stage's method throttles (docs/security.md, "Auth throttling").
PER_SOURCE = RequestRate("source", limit=60, window_seconds=10)
PER_ACCOUNT = RequestRate("account", limit=30, window_seconds=10)


def admit(rate: RequestRate, subject: str, now: float) -> None:
    """Count one request of ``subject``; RateLimited (with the seconds to the window's end) when it is
    past the limit. A refused request is not counted."""
    window = int(now // rate.window_seconds)
    ends = (window + 1) * rate.window_seconds
    pk, sk = RequestCount.key(f"{rate.kind}#{fingerprint('rate', rate.kind, subject.lower())[:40]}", window)
    item = RequestCount(pk, sk)
    with global_scope():
        try:
            item.update(actions=[RequestCount.hits.add(1),
                                 RequestCount.expires_at.set(datetime.fromtimestamp(ends + rate.window_seconds, UTC))],
                        condition=RequestCount.hits.does_not_exist() | (RequestCount.hits < rate.limit))
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise
            raise RateLimited("Too many requests from you; try again later.",
                              retry_after=max(1, math.ceil(ends - now))) from None
