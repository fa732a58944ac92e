"""What domain code needs to tell the time: a :class:`Clock`.

The composition root (``Services``) is a clock; so is :data:`SYSTEM_CLOCK`.
Domain modules and tools take a ``Clock`` instead of the whole ``Services``,
so tests hand them a fixed clock and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK: Clock = SystemClock()
