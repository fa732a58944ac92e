"""A session's runs go one at a time, in the order their launches committed
(DESIGN §9). The sessions themselves (create, list, the transcript) are
``agenthq.sessions``; this is the part the launch and the run engine need.

- **Numbering** (:class:`TurnClaim`): a launch into a session writes, in the
  launch's own transaction, ``launched = n`` on the session on the condition
  that it was ``n - 1`` when read, and the session's ``TURN#n`` item with the
  run's id. Concurrent launches conflict on that condition and are retried
  (``runs.launch``): the turn numbers are the order the launches committed,
  with no gap. ``reject`` adds ``done_turns = n - 1`` (nothing in flight) to
  the condition: a busy session is a 409 ``session_busy``.
- **Waiting** (:func:`is_ready`, :func:`wait`): turn n starts only once turns
  1 … n-1 are done (``done_turns >= n - 1``). Until then its Start step answers
  ``queue`` and its WaitForSlot task token is kept on ``TURN#n``, written on the
  condition that the turn is still not ready — so a turn never waits on a token
  nobody will answer. A waiting turn holds nothing: no Lambda, no run slot
  (it takes a slot only once it is ready).
- **Handing on** (:func:`on_end`, after a session run's end, idempotent):
  ``done_turns`` moves past every turn whose run has ended, from the first not
  done on, each move conditioned on the count it read (so each turn is done —
  and its usage added to the session, its answer put in the transcript —
  exactly once); then the next turn's waiting task, if any, is answered
  ``start``. A run that ended while waiting for its turn (a cancel) has its own
  task answered ``finish``, and is done only when the turns before it are.
- **Owed hand-ons** (:func:`hand_on_owed`): the run's ending transaction also
  writes a ``SessionHandOn`` mark, deleted once :func:`on_end` is through. A
  process that dies between the two (a worker past its retries, a cancel
  request) leaves the mark; the minute schedule (``agenthq.sessions.healing``)
  hands on for it, so a session never stays ``running`` behind an ended run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError

from agenthq.errors import NotFound, SessionBusy
from agenthq.observability import logger
from agenthq.runs import session_events
from agenthq.runs.statuses import TERMINAL
from agenthq.store import transaction
from agenthq.store.items import (
    AgentSession,
    ConversationMessage,
    ConversationSummary,
    Run,
    SessionHandOn,
    SessionTurn,
    ToolCall,
    TranscriptEntry,
)
from agenthq.usage import Usage

if TYPE_CHECKING:
    from agenthq.services import Services

START, FINISH = "start", "finish"
IDLE = "session.idle"  # the session's event when its last turn launched is done (run_seq 0: no run's own event)
#: How many turns one hand-on moves past at most (a long line of cancelled turns: the next run's end goes on).
MOST_TURNS_PER_HAND_ON = 100


class TurnClaim:
    """A launch's place in a session: the next turn, numbered in the launch's
    transaction (:meth:`write`, called again on each attempt of the transaction)."""

    def __init__(self, workspace_id: str, session_id: str, *, reject_if_busy: bool,
                 agent_version: int | None = None) -> None:
        self.workspace_id = workspace_id
        self.session_id = session_id
        self.reject_if_busy = reject_if_busy
        self.agent_version = agent_version  # the version its session is pinned to (None: the agent's current)
        self.number: int | None = None
        self.launched = 0
        self.event_seq = 0

    def read(self, run: Run) -> None:
        """Before each attempt: the session as it is now, and the turn this launch would be."""
        session = AgentSession.get_or_none(*AgentSession.key(self.workspace_id, self.session_id),
                                           consistent_read=True)
        if session is None:
            raise NotFound("Session not found.")
        self.launched = int(session.launched or 0)
        self.event_seq = int(session.event_seq or 0)
        if self.reject_if_busy and int(session.done_turns or 0) < self.launched:
            raise SessionBusy()
        self.number = self.launched + 1
        run.session_id, run.session_turn = self.session_id, self.number

    def write(self, tx: Any, run: Run, text: str, at: datetime, queued: tuple[str, dict[str, Any]]) -> None:
        """In the launch's transaction: the turn :meth:`read` found, on the condition that it is still
        next, with the run's ``queued`` event (type, data) as the session's next event."""
        launched, number = self.launched, self.launched + 1
        condition = AgentSession.launched == launched
        if self.reject_if_busy:
            condition &= AgentSession.done_turns == launched
        session_events.write(tx, self.workspace_id, self.session_id, self.event_seq, run.id,
                             [(1, queued[0], at, queued[1])],
                             session_actions=[AgentSession.launched.set(number), AgentSession.updated_at.set(at)],
                             session_condition=condition)
        tx.save(SessionTurn(*SessionTurn.key(self.workspace_id, self.session_id, number), number=number,
                            run_id=run.id, launched_at=at), condition=SessionTurn.pk.does_not_exist())
        tx.save(TranscriptEntry(*TranscriptEntry.key(self.workspace_id, self.session_id, number, "user"),
                                role="user", text=text, run_id=run.id, at=at),
                condition=TranscriptEntry.pk.does_not_exist())


def _session(run: Run) -> AgentSession | None:
    return AgentSession.get_or_none(*AgentSession.key(run.workspace_id, str(run.session_id)), consistent_read=True)


def is_ready(run: Run) -> bool:
    """Whether a session run's turn may start: every turn before it is done (or the session is gone)."""
    if not run.session_turn:
        return True
    session = _session(run)
    return session is None or int(session.done_turns or 0) >= int(run.session_turn) - 1


def wait(run: Run, task_token: str) -> bool:
    """Keep ``task_token`` on the run's turn while it is not ready; False when it is ready (start it)."""
    number = int(run.session_turn or 0)
    try:
        with transaction() as tx:
            tx.update(SessionTurn(*SessionTurn.key(run.workspace_id, str(run.session_id), number)),
                      actions=[SessionTurn.task_token.set(task_token)], condition=SessionTurn.pk.exists())
            tx.condition_check(AgentSession, *AgentSession.key(run.workspace_id, str(run.session_id)),
                               condition=AgentSession.done_turns < number - 1)
    except TransactWriteError:
        return not is_ready(run) and _waits_with(run, task_token)
    return True


def _waits_with(run: Run, task_token: str) -> bool:
    turn = SessionTurn.get_or_none(*SessionTurn.key(run.workspace_id, str(run.session_id), int(run.session_turn or 0)),
                                   consistent_read=True)
    return turn is not None and turn.task_token == task_token


# --------------------------------------------------------------------------- the prompt

SUMMARY_HEADING = "The conversation so far, summarised (the turns before this one):\n\n"
SUMMARY_ACK = "Understood. I will continue the conversation from this summary."
SUMMARISE_SYSTEM = ("You summarise a conversation between a user and an AI agent so that the agent can go on "
                    "with it without the full text. Keep every fact, decision, name, number, tool result and open "
                    "question that later turns may need; leave out pleasantries. Write plain prose.")
SUMMARISE_ASK = "Summarise the conversation above for your own later use, as the system prompt says."
#: The most a summary's answer may take (its call is reserved at this).
SUMMARY_MAX_TOKENS = 1024


@dataclass
class EarlierTurns:
    """What a session run's prompt begins with: the newest summary of the first turns (if the session
    was compacted), then each later turn before the run's own, whole."""

    summary: ConversationSummary | None = None
    turns: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)

    def messages(self, through: int | None = None) -> list[dict[str, Any]]:
        """As Messages API messages (only the turns up to ``through``, if given)."""
        messages = summary_messages(self.summary.text) if self.summary is not None else []
        for number, turn in self.turns:
            if through is None or number <= through:
                messages += turn
        return messages


def summary_messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": SUMMARY_HEADING + text}]},
            {"role": "assistant", "content": [{"type": "text", "text": SUMMARY_ACK}]}]


def earlier_turns(run: Run) -> EarlierTurns:
    """The session's turns before this run's (``EarlierTurns``): the newest summary made before it, and
    each turn after that summary — its input, tool calls, tool results and answer (a turn that ended
    without one: its input and a line saying how it ended; one that never started is left out)."""
    if not run.session_turn or int(run.session_turn) <= 1:
        return EarlierTurns()
    wid, sid, number = run.workspace_id, str(run.session_id), int(run.session_turn)
    partition = AgentSession.partition(wid, sid)
    summary = next(iter(ConversationSummary.query(
        partition, ConversationSummary.sk.between(ConversationSummary.key(wid, sid, 1)[1],
                                                  ConversationSummary.key(wid, sid, number - 1)[1]),
        scan_index_forward=False, limit=1, consistent_read=True)), None)
    first = int(summary.through_turn) + 1 if summary is not None else 1
    earlier = EarlierTurns(summary)
    if first <= number - 1:
        for turn in SessionTurn.query(partition, SessionTurn.sk.between(
                SessionTurn.key(wid, sid, first)[1], SessionTurn.key(wid, sid, number - 1)[1]), consistent_read=True):
            messages = turn_messages(wid, turn.run_id)
            if messages:
                earlier.turns.append((int(turn.number), messages))
    return earlier


def earlier_messages(run: Run) -> list[dict[str, Any]]:
    """The session's earlier turns as the messages this run's prompt begins with."""
    return earlier_turns(run).messages()


def prompt_tokens(system: Any, messages: Any, tools: Any) -> int:
    """A prompt's size in tokens as the context budget counts it: a token per 4 characters of its JSON."""
    return math.ceil(len(json.dumps({"system": system, "messages": messages, "tools": tools})) / 4)


def compaction_through(earlier: EarlierTurns, tokens_with: Callable[[list[dict[str, Any]]], int],
                       budget: int) -> int | None:
    """The turn through which the earlier turns are to be summarised (with the summary before them), so
    that the prompt fits ``budget`` — None when it fits as it is. The newest turns are kept whole while,
    with the summary's place, they take at most half the budget (room for the turns to come); the rest
    are folded, at least the oldest one."""
    if not earlier.turns or tokens_with(earlier.messages()) <= budget:
        return None
    placeholder = summary_messages("x" * SUMMARY_MAX_TOKENS * 4)
    kept: list[dict[str, Any]] = []
    through = earlier.turns[-1][0]
    for index in range(len(earlier.turns) - 1, 0, -1):  # the oldest turn is always folded
        number, messages = earlier.turns[index]
        if tokens_with([*placeholder, *messages, *kept]) > budget // 2:
            break
        kept = [*messages, *kept]
        through = earlier.turns[index - 1][0]
    return through


def summary_request(earlier: EarlierTurns, through: int) -> list[dict[str, Any]]:
    """The messages of the model call that summarises the turns up to ``through``."""
    return [*earlier.messages(through), {"role": "user", "content": [{"type": "text", "text": SUMMARISE_ASK}]}]


def summary_of(workspace_id: str, session_id: str, through: int) -> ConversationSummary | None:
    return ConversationSummary.get_or_none(*ConversationSummary.key(workspace_id, session_id, through),
                                           consistent_read=True)


def new_summary(run: Run, through: int, earlier: EarlierTurns, text: str, at: datetime) -> ConversationSummary:
    replaced = [number for number, _ in earlier.turns if number <= through]
    return ConversationSummary(*ConversationSummary.key(run.workspace_id, str(run.session_id), through), text=text,
                               through_turn=through, replaced_turns=replaced, run_id=run.id, at=at)


def turn_messages(workspace_id: str, run_id: str) -> list[dict[str, Any]]:
    stored = [{"role": m.role, "content": m.content} for m in ConversationMessage.query(
        Run.partition(workspace_id, run_id), ConversationMessage.sk.startswith("MSG#"), consistent_read=True)]
    if not stored:
        return []
    answered = [i for i, m in enumerate(stored) if m["role"] == "assistant" and m["content"]
                and not any(b.get("type") == "tool_use" for b in m["content"])]
    if answered:
        return stored[:answered[-1] + 1]
    ended = Run.get_or_none(*Run.key(workspace_id, run_id))
    status = ended.status if ended is not None else "unknown"
    return [stored[0], {"role": "assistant",
                        "content": [{"type": "text", "text": f"(This turn ended {status} without an answer.)"}]}]


# --------------------------------------------------------------------------- the end of a turn


def hand_on_owed(run: Run, at: datetime) -> Callable[[Any], None] | None:
    """For a session turn's ending transaction (``Change.extra``): the mark that its hand-on is owed,
    deleted by :func:`on_end` once it is through. None for a run that is no session's turn."""
    if not run.session_id or not run.session_turn:
        return None
    marker = SessionHandOn(*SessionHandOn.key(run.workspace_id, run.session_id, run.id),
                           workspace_id=run.workspace_id, session_id=run.session_id, run_id=run.id, ended_at=at,
                           gsi1pk=SessionHandOn.shard_of(run.id),
                           gsi1sk=SessionHandOn.due_key(run.workspace_id, run.session_id, run.id, at))
    return lambda tx: tx.save(marker)


def on_end(services: Services, run: Run) -> None:
    """After a session run's end (idempotent): its own waiting task goes on to
    finish; the session's done turns move on; the next turn starts. Then the
    mark that this hand-on was owed (:func:`hand_on_owed`) goes."""
    if not run.session_id or not run.session_turn:
        return
    own = SessionTurn.get_or_none(*SessionTurn.key(run.workspace_id, run.session_id, int(run.session_turn)),
                                  consistent_read=True)
    if own is not None and own.task_token and run.started_at is None:  # it ended while waiting for its turn
        _answer(services, own.task_token, FINISH)
    ended = tree_ended(run)  # else a delegated run of it is still going: its end hands on (the mark stays meanwhile)
    hand_on(services, run.workspace_id, run.session_id, ended_trees=frozenset({run.id}) if ended else frozenset())
    if ended:
        SessionHandOn(*SessionHandOn.key(run.workspace_id, run.session_id, run.id)).delete()


def tree_ended(run: Run) -> bool:
    """``run`` has ended, and so has every run it delegated to, and theirs (a cancelled parent's children
    end after it: a turn is done only when its whole tree is)."""
    if run.status not in TERMINAL:
        return False
    for call in ToolCall.query(Run.partition(run.workspace_id, run.id), ToolCall.sk.startswith("TOOL#"),
                               consistent_read=True):
        if call.child_run_id:
            child = Run.get_or_none(*Run.key(run.workspace_id, call.child_run_id), consistent_read=True)
            if child is not None and not tree_ended(child):
                return False
    return True


def hand_on(services: Services, workspace_id: str, session_id: str,
            ended_trees: frozenset[str] = frozenset()) -> None:
    """The session's done turns move on as far as their run trees have ended; the next turn waiting starts.
    ``ended_trees``: runs the caller saw end with their whole tree (an end is for good: not walked again)."""
    for _ in range(MOST_TURNS_PER_HAND_ON):
        session = AgentSession.get_or_none(*AgentSession.key(workspace_id, session_id), consistent_read=True)
        if session is None:
            return
        done = int(session.done_turns or 0)
        turn = SessionTurn.get_or_none(*SessionTurn.key(workspace_id, session_id, done + 1), consistent_read=True)
        if turn is None:
            return  # nothing launched after the last turn done
        run = Run.get_or_none(*Run.key(workspace_id, turn.run_id))
        if run is None or run.status not in TERMINAL:
            if turn.task_token:  # the next turn waits: it starts (an answered token is refused, harmlessly)
                _answer(services, turn.task_token, START)
            return
        if run.id not in ended_trees and not tree_ended(run):  # a run it delegated to still goes: its end hands on
            return
        _mark_done(session, run, done + 1, services.now())


def _mark_done(session: AgentSession, run: Run, number: int, at: datetime) -> None:
    """Turn ``number`` is done: its answer in the transcript and its usage on the session, once. When it
    was the last turn launched, the session is idle: ``session.idle`` is its next event, in the same
    transaction, on the condition that no turn was launched meanwhile (a launch moves ``launched`` and
    the event counter: this transaction then fails and the caller reads the session again)."""
    usage = Usage.of(run) + Usage(runs=1)
    entry = TranscriptEntry(*TranscriptEntry.key(session.workspace_id, session.id, number, "assistant"),
                            role="assistant", text=_answer_text(run), run_id=run.id, at=run.finished_at or at)
    actions = [AgentSession.done_turns.set(number), AgentSession.last_run_id.set(run.id),
               AgentSession.updated_at.set(at), *usage.add_actions(AgentSession)]
    condition = AgentSession.done_turns == number - 1
    try:
        with transaction() as tx:
            if int(session.launched or 0) == number:
                idle = {"session_id": session.id, "run_id": run.id, "status": "idle", "turns": number}
                session_events.write(tx, session.workspace_id, session.id, int(session.event_seq or 0), run.id,
                                     [(0, IDLE, at, idle)], session_actions=actions,
                                     session_condition=condition & (AgentSession.launched == number))
            else:
                tx.update(session, actions=actions, condition=condition)
            tx.save(entry)
    except TransactWriteError:
        pass  # another hand-on marked it, or a turn was launched meanwhile: the caller reads the session again


def _answer_text(run: Run) -> str:
    if run.status == "succeeded":
        return run.output or ""
    reason = (run.error or {}).get("message") or (run.error or {}).get("reason") or run.status
    return f"(The run ended {run.status}: {reason})"


def _answer(services: Services, token: str, next_step: str) -> None:
    if not services.orchestrator.send_next(token, next_step):
        logger.info("task token no longer valid")
