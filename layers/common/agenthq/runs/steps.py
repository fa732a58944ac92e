"""The run's steps as Step Functions tasks call them."""

from __future__ import annotations

from typing import Any


class RunStepRejected(Exception):
    """A step that must not be retried (unknown run or step)."""


def run_step(event: dict[str, Any]) -> dict[str, Any]:
    raise RunStepRejected(f"unknown step {event.get('step')!r}")
