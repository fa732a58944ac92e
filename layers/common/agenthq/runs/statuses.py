"""A run's statuses: the type the API documents and the sets the engine checks.
Kept apart (no imports) so that what only names a status stays cheap to import."""

from __future__ import annotations

from typing import Literal, get_args

RunStatus = Literal["queued", "running", "paused", "waiting", "succeeded", "failed", "cancelled", "timed_out"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
ACTIVE = frozenset({"queued", "running", "paused", "waiting"})
