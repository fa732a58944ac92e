"""The usage ledger (DESIGN §5): every metered quantity of a run is an entry
under a deterministic id, written in the same transaction as the counters it
moves (the run's totals, the workspace's day and month counters), on the
condition that the entry does not exist yet. So a retried or redelivered step
is counted once, and the ledger, the counters and the run's totals agree.

Entry ids: ``run`` (the launch), ``model#<message id>`` (a model call Anthropic
answered — a step that calls the model twice pays twice, and both are here; a
call whose answer never arrived is here too, marked ``estimated``, at the most
it can cost: under its message id if its stream said it, else under
``unanswered_<hex>``, the adapter's id of that attempt),
``tool#<tool use id>`` (``tool#mcp#<server>#<tool use id>`` for an MCP server's tool), ``seconds`` (agent-seconds) and ``infra`` (the modelled
AWS cost of its steps, accrued on the run as it goes), both when the run ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from agenthq.store.items import LedgerEntry, Run
from agenthq.usage import counters
from agenthq.usage.vector import Usage

RUN = "run"
SECONDS = "seconds"
INFRA = "infra"


def model_entry(message_id: str) -> str:
    return f"model#{message_id}"


def tool_entry(tool_use_id: str, mcp_server: str | None = None) -> str:
    """``tool#<tool use id>``; a call to a workspace's MCP server names it: ``tool#mcp#<server>#<tool use id>``."""
    return f"tool#mcp#{mcp_server}#{tool_use_id}" if mcp_server else f"tool#{tool_use_id}"


def record(tx: Any, workspace_id: str, run_id: str, entry: str, usage: Usage, at: datetime, shards: int, *,
           step: int = 0, model: str | None = None) -> None:
    """In ``tx``: the entry (only if new) and the workspace's counters. The
    caller adds ``usage`` to the run's totals in the same transaction."""
    put(tx, workspace_id, run_id, entry, usage, at, step=step, model=model)
    counters.count(tx, workspace_id, usage, at, shards)


def put(tx: Any, workspace_id: str, run_id: str, entry: str, usage: Usage, at: datetime, *, step: int = 0,
        model: str | None = None, estimated: bool = False) -> None:
    """In ``tx``: the entry alone, only if new (the caller counts the usage once for all its entries)."""
    item = LedgerEntry(*LedgerEntry.key(workspace_id, run_id, entry), entry=entry, at=at, step=step, model=model,
                       estimated=True if estimated else None)
    for name, value in usage.view().items():
        setattr(item, name, value)
    tx.save(item, condition=LedgerEntry.pk.does_not_exist())


def entries(workspace_id: str, run_id: str) -> Iterator[LedgerEntry]:
    return LedgerEntry.query(Run.partition(workspace_id, run_id), LedgerEntry.sk.startswith("LEDGER#"),
                             consistent_read=True)


def total(workspace_id: str, run_id: str) -> Usage:
    """The sum of the run's ledger entries."""
    return sum((Usage.of(e) for e in entries(workspace_id, run_id)), Usage())
