"""Usage: what a workspace consumed, and where it is counted.

- ``vector``: :class:`TokenUsage` (the four token classes a model call
  reports) and :class:`Usage` (everything metered: runs, model calls, tokens,
  cost in micro-dollars, tool calls, agent-seconds), with addition. Pure values.
- ``counters``: the write-sharded day and month counters of a workspace —
  counted in the same transaction as the step that used it, read back by
  summing the shards.
"""

from agenthq.usage.vector import TokenUsage, Usage

__all__ = ["TokenUsage", "Usage"]
