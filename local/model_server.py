"""The offline model server: the Anthropic Messages API wire format, offline.

The local cloud starts it when no ``ANTHROPIC_API_KEY`` is set and points the
official ``anthropic`` SDK at it through ``ANTHROPIC_BASE_URL``; the production
code path is unchanged. Tests start one per module (``OfflineModelServer``).

Behaviour is deterministic and stateless across requests (except the prompt
cache, the fault plan and the request log). It is driven by **directives**,
lines in the text of the LATEST user turn — the last user message that carries
text and no ``tool_result`` (a run's input; in a multi-turn conversation, such
as a session's, the newest message the user sent; for a one-turn conversation,
the first message)::

    /tool <name> <json-object>                 one turn calling one tool
    /tools [{"name": ..., "input": {...}}, ...] one turn with parallel tool calls
    /stop <max_tokens|refusal|pause_turn>      one turn ending with that stop_reason
    /latency <seconds> [<tokens per second>]   every call of this conversation takes that long (below);
                                               not a turn

Any other line (including one that does not parse as a directive) is ordinary
text. The n-th assistant turn after the latest user turn answers its n-th directive;
directives naming tools the request does not offer are skipped (in ``/tools``
only the unknown calls are dropped). When the directives are exhausted the
answer is ``end_turn`` with the text ``"Offline answer: " + <input text without
directive lines, stripped>`` followed by one line ``"<tool name>: <result
text>"`` per ``tool_result`` since the latest user turn. Earlier turns (their
inputs, answers, tool calls and results) are context only: the same latest
turn after the same history gets the same answer. ``server.requests`` keeps
what each call received, so a test can assert a turn's prompt carried the
turns before it.

Usage: ``input_tokens`` = ceil(len(json.dumps({"system", "messages", "tools"
present in the request})) / 4), ``output_tokens`` = ceil(len(json.dumps(content))
/ 4) (at least 1, at most ``max_tokens``). ``max_tokens`` is honoured: an answer
longer than that is cut to fit (a text answer to its first characters, a tool
turn to the calls that fit whole) and ends with ``stop_reason`` ``max_tokens``,
reporting only the tokens it produced. Prompt caching: every block carrying ``cache_control`` (a
tool, a system block, a message block; or the request's top-level
``cache_control``, meaning the last block) is a breakpoint. The prefix up to the
last breakpoint is cached: the longest part of it seen before (at a breakpoint,
or up to 20 blocks before one, as the real API looks back) is
``cache_read_input_tokens`` (as many tokens as when it was written), the rest
``cache_creation_input_tokens``; both are then left out of ``input_tokens``, so
that, as with the Messages API, only what follows the last breakpoint is input.
A prefix's tokens are its blocks' share of the whole request's (the JSON around
the blocks included): a breakpoint on the last block caches the whole prompt.

Streaming: ``"stream": true`` answers with Server-Sent Events as the Messages
API does (``message_start`` with the prompt's usage, ``content_block_start`` /
``_delta`` / ``_stop`` per block, ``message_delta`` with the stop reason and the
output tokens, ``message_stop``), in chunked transfer encoding.

Billing: every answer the server produces is what Anthropic would bill, whether
or not its client was still there to read it (a client that timed out during a
stall, a stream cut off by a fault). ``server.billing`` (or ``GET
/_offline/billing?workspace=<id>``; ``DELETE`` clears) lists them: ``{id, model,
workspace, input_tokens, output_tokens, cache_creation_input_tokens,
cache_read_input_tokens, at}``, the workspace being the request's
``metadata.user_id``. Error answers (faults, 400s) are not billed.

Fault injection (``server.faults.add({...})`` or ``POST /_offline/faults`` with
one object or a list; ``DELETE /_offline/faults`` clears; ``GET`` lists)::

    {"status": 429,          # HTTP status to answer with (optional if stalling)
     "times": 1,             # how many matching requests it applies to; null = forever
     "match": "marker",      # only requests whose JSON body contains this text
     "retry_after": 2,       # seconds, sent as the retry-after header
     "reset_after": 5,       # anthropic-ratelimit-*-reset that far in the future
     "stall_seconds": 1.5,   # sleep first; without a status then answer normally
     "cut_after_events": 3,  # answer, but drop the connection after this many SSE events
                             # (a request without "stream": after the headers); with a
                             # status, a streamed answer ends in an ``error`` event there
                             # instead, as the API reports an overload mid-stream
     "latency_seconds": 5,   # the call's pace (see Model latency below), instead of the default
     "tokens_per_second": 60}

Model latency: a call to Claude takes seconds, and a Lambda waiting on it is billed for the wait, so the
server can take as long as the real API (:class:`Pace`). A call takes ``latency_seconds`` in all; with
``tokens_per_second`` its streamed answer comes at that rate (the text and tool-input deltas spaced
evenly, the output tokens ÷ the rate from the first delta to the last) after a wait for its first token
of what is left of the latency; without a rate the whole latency passes before the first byte. A
non-streamed answer comes whole after ``max(latency, output ÷ rate)``. The pace of a call is, first
found: a fault's ``latency_seconds``/``tokens_per_second`` (a fault may carry only those: it then
delays the matching calls and answers normally), the conversation's ``/latency`` directive, the
server's default (``OfflineModelServer(latency_seconds=, tokens_per_second=)``, the attributes of the
same names, or the local cloud's ``--model-latency`` / ``AGENTHQ_MODEL_LATENCY_SECONDS`` and
``--model-tokens-per-second`` / ``AGENTHQ_MODEL_TOKENS_PER_SECOND``; 0 by default). A stall
(``stall_seconds``) comes on top, before the answer is made.

Run standalone: ``python -m local.model_server --port 8787`` prints the base URL.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STOP_DIRECTIVE_REASONS = frozenset({"max_tokens", "refusal", "pause_turn"})
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
FAULT_MESSAGES = {
    429: "Number of request tokens has exceeded your per-minute rate limit (offline fault)",
    500: "Internal server error (offline fault)",
    529: "Overloaded (offline fault)",
}
RATE_LIMITS = {"requests": 4_000, "tokens": 2_000_000, "input-tokens": 1_600_000, "output-tokens": 400_000}
MAX_BODY_BYTES = 32 * 1024 * 1024
EMPTY_CONTENT = "all messages must have non-empty content except for the optional final assistant message"
CACHE_LOOKBACK_BLOCKS = 20
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


class InvalidRequest(ValueError):
    """The request breaks a rule the real API enforces (answered with a 400)."""


# --------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class Pace:
    """How long a call takes (see "Model latency" in the module docstring)."""

    latency_seconds: float = 0.0
    tokens_per_second: float = 0.0  # 0: the answer comes all at once, after the latency

    def streaming_seconds(self, output_tokens: int) -> float:
        """First delta → last delta of a streamed answer of ``output_tokens``."""
        return output_tokens / self.tokens_per_second if self.tokens_per_second > 0 else 0.0

    def first_token_seconds(self, output_tokens: int) -> float:
        """Request → the first event of a streamed answer."""
        return max(0.0, self.latency_seconds - self.streaming_seconds(output_tokens))

    def whole_seconds(self, output_tokens: int) -> float:
        """Request → a non-streamed answer (the whole answer is made first)."""
        return max(self.latency_seconds, self.streaming_seconds(output_tokens))


LATENCY_DIRECTIVE = re.compile(r"^/latency\s+(\d+(?:\.\d+)?)(?:\s+(\d+(?:\.\d+)?))?\s*$")


def latency_directive(body: Mapping[str, Any]) -> Pace | None:
    """The pace a ``/latency`` line of the conversation's latest user turn sets, if any."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return None
    for line in _text_of(messages[latest_user_turn(messages)].get("content", "")).splitlines():
        found = LATENCY_DIRECTIVE.match(line.strip())
        if found:
            return Pace(float(found.group(1)), float(found.group(2) or 0.0))
    return None


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """One injected failure (see the module docstring for the fields)."""

    status: int | None = None
    times: int | None = 1
    match: str | None = None
    retry_after: float | None = None
    reset_after: float | None = None
    stall_seconds: float = 0.0
    cut_after_events: int | None = None
    latency_seconds: float | None = None
    tokens_per_second: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be a JSON object")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(**data)
        fault.check()
        return fault

    def check(self) -> None:
        """Raise ValueError unless the fault is well formed."""
        if self.status is not None and (not _is_int(self.status) or not 400 <= self.status <= 599):
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.times is not None and (not _is_int(self.times) or self.times < 1):
            raise ValueError("times must be a positive integer or null (forever)")
        if self.match is not None and not isinstance(self.match, str):
            raise ValueError("match must be a string")
        for name in ("retry_after", "reset_after", "stall_seconds", "latency_seconds", "tokens_per_second"):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or value < 0):
                raise ValueError(f"{name} must be a non-negative number")
        if self.cut_after_events is not None and (not _is_int(self.cut_after_events) or self.cut_after_events < 0):
            raise ValueError("cut_after_events must be a non-negative integer")
        if (self.status is None and not self.stall_seconds and self.cut_after_events is None
                and self.latency_seconds is None and self.tokens_per_second is None):
            raise ValueError("a fault needs a status, a stall_seconds, a cut_after_events or a latency_seconds")

    @property
    def pace(self) -> Pace | None:
        """The call's pace this fault sets, if it sets one."""
        if self.latency_seconds is None and self.tokens_per_second is None:
            return None
        return Pace(float(self.latency_seconds or 0.0), float(self.tokens_per_second or 0.0))

    def matches(self, body_text: str) -> bool:
        return self.match is None or self.match in body_text


class Faults:
    """The pending faults, consumed in the order they were added (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(self, fault: Fault | Mapping[str, Any]) -> Fault:
        """Queue a fault (a ``Fault`` or its dict form) and return it."""
        fault = Fault.from_dict(fault) if not isinstance(fault, Fault) else dataclasses.replace(fault)
        fault.check()
        with self._lock:
            self._pending.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dataclasses.asdict(f) for f in self._pending]

    def take(self, body_text: str) -> Fault | None:
        """The first fault matching this request body, consuming one of its ``times``."""
        with self._lock:
            for index, fault in enumerate(self._pending):
                if fault.matches(body_text):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            del self._pending[index]
                    return dataclasses.replace(fault)
        return None


# ----------------------------------------------------------------- validation


def validate_request(body: Any) -> None:
    """Raise InvalidRequest for what the real Messages API would refuse."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise InvalidRequest("model: Field required")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: Input should be a non-empty string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens: Field required")
    if not _is_int(max_tokens) or max_tokens < 0:
        raise InvalidRequest("max_tokens: Input should be a non-negative integer")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("stream: Input should be a valid boolean")
    _validate_system(body.get("system"))
    _validate_tools(body.get("tools"))
    _validate_messages(body.get("messages"))


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidRequest("system: Input should be a string or a list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(f"system.{index}: Input should be a text block")


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{index}: Input should be an object")
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise InvalidRequest(f"tools.{index}.name: Field required (1-128 characters of [a-zA-Z0-9_-])")
        is_custom = tool.get("type") in (None, "custom")
        if is_custom and not isinstance(tool.get("input_schema"), dict):
            raise InvalidRequest(f"tools.{index}.custom.input_schema: Field required")
        if name in names:
            raise InvalidRequest("tools: Tool names must be unique.")
        names.add(name)


def _validate_messages(messages: Any) -> None:
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Input should be a non-empty list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages.{index}: Input should be an object")
        if message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        is_final = index == len(messages) - 1
        if isinstance(content, str):
            if not content and not (is_final and message["role"] == "assistant"):
                raise InvalidRequest(f"messages.{index}: {EMPTY_CONTENT}")
            continue
        if not isinstance(content, list):
            raise InvalidRequest(f"messages.{index}.content: Input should be a string or a list of content blocks")
        if not content and not (is_final and message["role"] == "assistant"):
            raise InvalidRequest(f"messages.{index}: {EMPTY_CONTENT}")
        for position, block in enumerate(content):
            _validate_block(block, f"messages.{index}.content.{position}", message["role"])
    if messages[0]["role"] != "user":
        raise InvalidRequest('messages: first message must use the "user" role')
    for index in range(1, len(messages)):
        if messages[index]["role"] == messages[index - 1]["role"]:
            role = messages[index]["role"]
            raise InvalidRequest(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
    for index, message in enumerate(messages):
        if message["role"] == "user":
            _validate_tool_results(messages, index)
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            _validate_tool_uses_answered(messages, index)


def _validate_block(block: Any, where: str, role: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequest(f"{where}: Input should be a content block with a 'type'")
    kind = block["type"]
    if kind == "text" and not isinstance(block.get("text"), str):
        raise InvalidRequest(f"{where}.text: Field required")
    if kind == "tool_use":
        if role != "assistant":
            raise InvalidRequest(f"{where}: `tool_use` blocks may only appear in assistant messages")
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise InvalidRequest(f"{where}: `tool_use` blocks need an `id` and a `name`")
        if not isinstance(block.get("input"), dict):
            raise InvalidRequest(f"{where}.input: Input should be an object")
    if kind == "tool_result":
        if role != "user":
            raise InvalidRequest(f"{where}: `tool_result` blocks may only appear in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise InvalidRequest(f"{where}.tool_use_id: Field required")


def _tool_use_ids(message: Mapping[str, Any]) -> list[str]:
    return [b["id"] for b in _blocks(message.get("content")) if b.get("type") == "tool_use"]


def _validate_tool_results(messages: list[dict[str, Any]], index: int) -> None:
    offered = set(_tool_use_ids(messages[index - 1])) if index > 0 else set()
    for position, block in enumerate(_blocks(messages[index].get("content"))):
        if block.get("type") == "tool_result" and block["tool_use_id"] not in offered:
            raise InvalidRequest(
                f"messages.{index}.content.{position}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` block "
                "in the previous message."
            )


def _validate_tool_uses_answered(messages: list[dict[str, Any]], index: int) -> None:
    ids = _tool_use_ids(messages[index])
    if not ids:
        return
    answered: set[str] = set()
    if index + 1 < len(messages):
        for block in _blocks(messages[index + 1].get("content")):
            if block.get("type") != "tool_result":
                break
            answered.add(block["tool_use_id"])
    missing = [i for i in ids if i not in answered]
    if missing:
        raise InvalidRequest(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
            "in the next message."
        )


# -------------------------------------------------------------- the "model"


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    """What one assistant turn does: call tools, or stop with a reason."""

    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str | None = None


def parse_directives(text: str) -> tuple[list[Turn], str]:
    """Split the input into its directive turns and its ordinary text (stripped)."""
    turns: list[Turn] = []
    prose: list[str] = []
    for line in text.splitlines():
        if LATENCY_DIRECTIVE.match(line.strip()):
            continue  # the pace of every call (latency_directive), not a turn
        turn = _parse_directive(line.strip())
        if turn is None:
            prose.append(line)
        else:
            turns.append(turn)
    return turns, "\n".join(prose).strip()


def _parse_directive(line: str) -> Turn | None:
    if line.startswith("/tool "):
        name, _, raw_input = line[len("/tool ") :].strip().partition(" ")
        arguments = _json_or_none(raw_input) if raw_input.strip() else {}
        if not name or not isinstance(arguments, dict):
            return None
        return Turn(tool_calls=(ToolCall(name, arguments),))
    if line.startswith("/tools "):
        calls = _json_or_none(line[len("/tools ") :])
        if not isinstance(calls, list) or not calls:
            return None
        parsed = []
        for call in calls:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
                return None
            arguments = call.get("input", {})
            if not isinstance(arguments, dict):
                return None
            parsed.append(ToolCall(call["name"], arguments))
        return Turn(tool_calls=tuple(parsed))
    if line.startswith("/stop "):
        reason = line[len("/stop ") :].strip()
        return Turn(stop_reason=reason) if reason in STOP_DIRECTIVE_REASONS else None
    return None


def reply_to(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The assistant content and stop_reason for a (valid) request, within its ``max_tokens``."""
    content, stop_reason = _full_reply(body)
    return within_max_tokens(content, stop_reason, body["max_tokens"])


def output_tokens(content: list[dict[str, Any]]) -> int:
    """The output tokens of ``content`` (at least 1)."""
    return max(1, _tokens(json.dumps(content)))


def within_max_tokens(content: list[dict[str, Any]], stop_reason: str,
                      max_tokens: int) -> tuple[list[dict[str, Any]], str]:
    """``content`` cut to ``max_tokens`` as the model would stop: a text to its
    first characters that fit, a tool turn to the calls that fit whole (stop
    reason ``max_tokens`` then)."""
    if output_tokens(content) <= max_tokens:
        return content, stop_reason
    kept: list[dict[str, Any]] = []
    for block in content:
        if block.get("type") == "text":
            text, size = block["text"], len(block["text"])
            while size > 0:  # (a token is 4 characters of the JSON: escapes take more than one)
                over = len(json.dumps([*kept, {**block, "text": text[:size]}])) - max_tokens * 4
                if over <= 0:
                    break
                size -= over
            if size > 0:
                kept.append({**block, "text": text[:size]})
            break
        if output_tokens([*kept, block]) > max_tokens:
            break
        kept.append(block)
    return kept, "max_tokens"


def latest_user_turn(messages: list[dict[str, Any]]) -> int:
    """The index of the latest user turn: the last user message with text and no
    ``tool_result`` (0 when there is none, as in a conversation of one turn)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        blocks = message.get("content")
        if message.get("role") != "user":
            continue
        if isinstance(blocks, str) or (_text_of(blocks) and not any(
                b.get("type") == "tool_result" for b in _blocks(blocks))):
            return index
    return 0


def _full_reply(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    if body["max_tokens"] == 0:
        return [], "max_tokens"
    messages = body["messages"][latest_user_turn(body["messages"]):]  # the turn being answered
    turns, prose = parse_directives(_text_of(messages[0]["content"]))
    offered = {tool["name"] for tool in body.get("tools") or []}
    playable = [turn for turn in (_offered_part(t, offered) for t in turns) if turn is not None]
    done = sum(1 for message in messages if message["role"] == "assistant")
    if done < len(playable):
        turn = playable[done]
        if turn.stop_reason:
            return [{"type": "text", "text": f"Offline {turn.stop_reason}: {prose}"}], turn.stop_reason
        seed = _digest({k: v for k, v in body.items() if k != "stream"})  # the same answer, streamed or not
        return [
            {"type": "tool_use", "id": f"toolu_{_digest([seed, i])}", "name": call.name, "input": call.input}
            for i, call in enumerate(turn.tool_calls)
        ], "tool_use"
    lines = ["Offline answer: " + prose]
    lines += [f"{name}: {text}" for name, text in _tool_results(messages)]
    return [{"type": "text", "text": "\n".join(lines)}], "end_turn"


def _offered_part(turn: Turn, offered: set[str]) -> Turn | None:
    if turn.stop_reason:
        return turn
    calls = tuple(call for call in turn.tool_calls if call.name in offered)
    return Turn(tool_calls=calls) if calls else None


def _tool_results(messages: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    names: dict[str, str] = {}
    for message in messages:
        for block in _blocks(message.get("content")):
            if block.get("type") == "tool_use":
                names[block["id"]] = block["name"]
            elif block.get("type") == "tool_result":
                yield names.get(block["tool_use_id"], "unknown tool"), _text_of(block.get("content", ""))


# ------------------------------------------------------------------- streaming


def stream_events(message: Mapping[str, Any], piece_chars: int = 64,
                  max_pieces: int = 100) -> list[tuple[str, dict[str, Any]]]:
    """``message`` as the Messages API streams it: ``(event name, data)`` pairs."""
    usage = dict(message["usage"])
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": min(1, usage["output_tokens"])}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block.get("type") == "tool_use":
            stub = {**block, "input": {}}
            kind, field, text = "input_json_delta", "partial_json", json.dumps(block.get("input", {}))
        else:
            stub = {**block, "text": ""}
            kind, field, text = "text_delta", "text", block.get("text", "")
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": stub}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        size = max(piece_chars, math.ceil(len(text) / max_pieces))
        for at in range(0, len(text), size):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": kind, field: text[at:at + size]}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


# ------------------------------------------------------------------- usage


class PromptCache:
    """Hashes of prompt prefixes already written, bounded (least recently used go)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()  # prefix hash → its tokens, as first written
        self._max_entries = max_entries

    def seen(self, key: str) -> bool:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return True
            return False

    def tokens(self, key: str) -> int:
        """The tokens of a cached prefix (as counted when it was written: a prefix is the same size each time)."""
        with self._lock:
            return self._entries.get(key, 0)

    def write(self, key: str, tokens: int = 0) -> None:
        with self._lock:
            self._entries.setdefault(key, tokens)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def count_input_tokens(body: Mapping[str, Any]) -> int:
    """All input tokens of a request (cached or not)."""
    counted = {key: body[key] for key in ("system", "messages", "tools") if key in body}
    return _tokens(json.dumps(counted))


def usage_for(body: Mapping[str, Any], content: list[dict[str, Any]], cache: PromptCache) -> dict[str, int]:
    """The usage object for a reply, reading and writing the prompt cache."""
    total = count_input_tokens(body)
    segments = list(_cache_segments(body))
    breakpoints = [i for i, (_, marked) in enumerate(segments) if marked]
    if body.get("cache_control") and segments:
        breakpoints.append(len(segments) - 1)
    cache_read = cache_write = 0
    if breakpoints:
        keys, sizes = _prefix_keys(str(body["model"]), [text for text, _ in segments])
        whole = len(json.dumps({key: body[key] for key in ("system", "messages", "tools") if key in body}))

        def prefix_tokens(index: int) -> int:
            """The request's tokens up to and including block ``index`` (its share of the whole request,
            the JSON around the blocks included: a breakpoint on the last block caches all of it)."""
            return min(total, _tokens_of_size(round(whole * sizes[index] / max(1, sizes[-1]))))

        last = max(breakpoints)
        candidates = sorted(
            {i for b in breakpoints for i in range(max(0, b - CACHE_LOOKBACK_BLOCKS), b + 1)}, reverse=True
        )
        hit = next((i for i in candidates if cache.seen(keys[i])), None)
        cache_read = min(cache.tokens(keys[hit]), prefix_tokens(last)) if hit is not None else 0
        cache_write = max(0, prefix_tokens(last) - cache_read)
        for b in breakpoints:
            cache.write(keys[b], prefix_tokens(b))
    return {
        "input_tokens": max(0, total - cache_read - cache_write),
        "output_tokens": min(output_tokens(content), max(int(body["max_tokens"]), 0)),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }


def _cache_segments(body: Mapping[str, Any]) -> Iterator[tuple[str, bool]]:
    """The request in cache order (tools, system, messages), one entry per block:
    its canonical JSON without cache_control, and whether it is a breakpoint."""
    for tool in body.get("tools") or []:
        yield _canonical(_without_cache_control(tool)), "cache_control" in tool
    system = body.get("system")
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) and system else system or []
    for block in system_blocks:
        yield _canonical(_without_cache_control(block)), "cache_control" in block
    for message in body["messages"]:
        content = message["content"]
        for block in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            nested = block.get("content") if isinstance(block.get("content"), list) else []
            marked = "cache_control" in block or any(isinstance(b, dict) and "cache_control" in b for b in nested)
            yield _canonical([message["role"], _without_cache_control(block)]), marked


def _prefix_keys(model: str, texts: list[str]) -> tuple[list[str], list[int]]:
    """Chained hashes and character sizes of every prefix of the segments."""
    digest = hashlib.sha256(model.encode())
    keys, sizes, size = [], [], 0
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x00")
        size += len(text)
        keys.append(digest.copy().hexdigest())
        sizes.append(size)
    return keys, sizes


def _without_cache_control(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    cleaned = {k: v for k, v in block.items() if k != "cache_control"}
    if isinstance(cleaned.get("content"), list):
        cleaned["content"] = [_without_cache_control(b) for b in cleaned["content"]]
    return cleaned


# ------------------------------------------------------------------- server


class OfflineModelServer:
    """An HTTP server speaking the Messages API, on a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_seconds: float = 0.0,
        tokens_per_second: float = 0.0,
        max_logged_requests: int = 1000,
        max_billed_answers: int = 100_000,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_seconds = latency_seconds  # the default pace of a call (Pace)
        self.tokens_per_second = tokens_per_second
        self.faults = Faults()
        self.cache = PromptCache()
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=max_logged_requests)
        self._billing: deque[dict[str, Any]] = deque(maxlen=max_billed_answers)
        self._status_counts: Counter[int] = Counter()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> str:
        """Bind, serve on a daemon thread, and return the base URL."""
        if self._httpd is not None:
            return self.base_url
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="offline-model-server", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close every connection (stalled requests are woken)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OfflineModelServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # observation

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Parsed bodies of the latest /v1/messages requests (oldest first, bounded)."""
        with self._lock:
            return list(self._requests)

    @property
    def status_counts(self) -> dict[int, int]:
        """How many /v1/messages responses were sent, per HTTP status."""
        with self._lock:
            return dict(self._status_counts)

    def billed(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """What Anthropic would bill for the answers produced so far (oldest first,
        bounded), every one or ``workspace``'s (the requests' ``metadata.user_id``)."""
        with self._lock:
            return [dict(b) for b in self._billing if workspace is None or b["workspace"] == workspace]

    @property
    def billing(self) -> list[dict[str, Any]]:
        """Every answer produced so far, as it would be billed (``billed``)."""
        return self.billed()

    def clear_billing(self) -> None:
        with self._lock:
            self._billing.clear()

    def reset(self) -> None:
        """Forget faults, the request log, the counters, the billing log and the prompt cache."""
        self.faults.clear()
        self.cache.clear()
        with self._lock:
            self._requests.clear()
            self._status_counts.clear()
            self._billing.clear()

    # request handling (called on the handler's thread)

    def _dispatch(self, handler: _Handler, method: str) -> None:
        path = handler.path.split("?", 1)[0].rstrip("/")
        raw = handler.read_body()
        if raw is None:
            return
        if path == "/_offline/faults":
            self._control_faults(handler, method, raw)
        elif path == "/_offline/billing" and method in ("GET", "DELETE"):
            if method == "DELETE":
                self.clear_billing()
            query = urllib.parse.parse_qs(handler.path.partition("?")[2])
            workspaces = query.get("workspace") or []
            handler.send_json(200, {"items": self.billed(workspaces[0] if workspaces else None)})
        elif path in ("/v1/messages", "/v1/messages/count_tokens") and method == "POST":
            self._messages(handler, raw, count_only=path.endswith("count_tokens"))
        else:
            handler.send_json(404, _error_body("not_found_error", f"Not found: {method} {path}", handler.request_id))

    def _control_faults(self, handler: _Handler, method: str, raw: bytes) -> None:
        if method == "DELETE":
            self.faults.clear()
        elif method == "POST":
            try:
                payload = json.loads(raw or b"null")
                for fault in payload if isinstance(payload, list) else [payload]:
                    self.faults.add(fault)
            except (ValueError, TypeError) as exc:
                handler.send_json(400, _error_body("invalid_request_error", str(exc), handler.request_id))
                return
        handler.send_json(201 if method == "POST" else 200, {"faults": self.faults.pending()})

    def _messages(self, handler: _Handler, raw: bytes, *, count_only: bool) -> None:
        def answer(status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
            with self._lock:
                self._status_counts[status] += 1
            handler.send_json(status, payload, headers)

        request_id = handler.request_id
        if not _api_key_present(handler.headers):
            answer(401, _error_body("authentication_error", "x-api-key header is required", request_id))
            return
        if not handler.headers.get("anthropic-version"):
            answer(400, _error_body("invalid_request_error", "anthropic-version: header is required", request_id))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            answer(400, _error_body("invalid_request_error", "The request body is not valid JSON", request_id))
            return
        body_text = raw.decode("utf-8", "replace")
        with self._lock:
            self._requests.append(body)

        fault = self.faults.take(body_text + "\n" + json.dumps(body, ensure_ascii=False))
        if fault is not None:
            if fault.stall_seconds and self._stopping.wait(fault.stall_seconds):
                return
            mid_stream = fault.cut_after_events is not None and isinstance(body, dict) and body.get("stream") is True
            if fault.status is not None and not mid_stream:
                error_type, message = _fault_error(fault.status)
                headers = _rate_limit_headers(exhausted=fault.status == 429, reset_after=fault.reset_after)
                if fault.retry_after is not None:
                    headers["retry-after"] = _format_seconds(fault.retry_after)
                answer(fault.status, _error_body(error_type, message, request_id), headers)
                return
        try:
            if count_only:
                _validate_messages(body.get("messages") if isinstance(body, dict) else None)
            else:
                validate_request(body)
        except InvalidRequest as exc:
            answer(400, _error_body("invalid_request_error", str(exc), request_id))
            return
        if count_only:
            answer(200, {"input_tokens": count_input_tokens(body)})
            return
        pace = ((fault.pace if fault is not None else None) or latency_directive(body)
                or Pace(self.latency_seconds, self.tokens_per_second))
        content, stop_reason = reply_to(body)
        answered: dict[str, Any] = {
            "id": f"msg_{secrets.token_hex(12)}",  # every call is a new message, as with the real API
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage_for(body, content, self.cache),
        }
        self._bill(body, answered)  # produced: billed, whether or not the client is there to read it
        cut = fault.cut_after_events if fault is not None else None
        produced = int(answered["usage"]["output_tokens"])
        if body.get("stream"):
            if self._stopping.wait(pace.first_token_seconds(produced)):
                return
            events = stream_events(answered)
            deltas = sum(1 for name, _ in events if name == "content_block_delta")
            gap = pace.streaming_seconds(produced) / deltas if deltas else 0.0
            with self._lock:
                self._status_counts[200] += 1
            error = _error_body(*_fault_error(fault.status), request_id) if fault and fault.status else None
            handler.send_event_stream(events, cut_after=cut, then_error=error, delta_gap=gap,
                                      stopping=self._stopping)
            return
        if self._stopping.wait(pace.whole_seconds(produced)):
            return
        if cut is not None:
            with self._lock:
                self._status_counts[200] += 1
            handler.send_json(200, answered, cut=True)
        else:
            answer(200, answered)

    def _bill(self, body: Mapping[str, Any], message: Mapping[str, Any]) -> None:
        metadata = body.get("metadata")
        workspace = metadata.get("user_id") if isinstance(metadata, dict) else None
        usage = message["usage"]
        with self._lock:
            self._billing.append({
                "id": message["id"], "model": message["model"],
                "workspace": workspace if isinstance(workspace, str) else None,
                **{name: int(usage[name]) for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                                       "cache_read_input_tokens")},
                "at": datetime.now(timezone.utc).isoformat(),
            })


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can close its open keep-alive connections."""

    daemon_threads = True
    request_queue_size = 256  # many runs call the model at once: the default backlog of 5 resets connections

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: OfflineModelServer
    ) -> None:
        super().__init__(address, handler)
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "offline-model-server"
    timeout = 300  # idle keep-alive connections are closed after this
    server: _HTTPServer
    request_id: str

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self._handle("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        self.request_id = f"req_offline_{secrets.token_hex(12)}"
        try:
            self.server.app._dispatch(self, method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug here must still look like the API failing
            self.close_connection = True
            self.send_json(500, _error_body("api_error", f"offline model server error: {exc!r}", self.request_id))

    def read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None if a 413 was sent."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            message = "Request exceeds the maximum allowed number of bytes."
            self.send_json(413, _error_body("request_too_large", message, self.request_id))
            return None
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None, *,
                  cut: bool = False) -> None:
        """Answer ``payload``; ``cut``: the headers only, then the connection drops."""
        data = json.dumps(payload).encode()
        all_headers = {**_rate_limit_headers(), **(headers or {})}
        self.send_response(status, "Overloaded" if status == 529 else _reason(status))
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", self.request_id)
        for name, value in all_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if cut:
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)
        self.wfile.flush()

    def send_event_stream(self, events: list[tuple[str, dict[str, Any]]], *, cut_after: int | None = None,
                          then_error: dict[str, Any] | None = None, delta_gap: float = 0.0,
                          stopping: threading.Event | None = None) -> None:
        """Answer 200 with ``events`` as Server-Sent Events (chunked); ``cut_after``:
        the connection drops after that many events, with no end to the body — or,
        with ``then_error``, the stream ends there with that ``error`` event.
        ``delta_gap``: seconds before each ``content_block_delta`` (the output's rate)."""
        self.send_response(200, "OK")
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", self.request_id)
        for name, value in _rate_limit_headers().items():
            self.send_header(name, value)
        self.end_headers()
        for sent, (name, data) in enumerate(events):
            if name == "content_block_delta":
                if delta_gap > 0 and (stopping or threading.Event()).wait(delta_gap):
                    self.close_connection = True
                    return
            if cut_after is not None and sent >= cut_after:
                if then_error is not None:
                    frame = f"event: error\ndata: {json.dumps(then_error)}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(frame), frame))
                self.wfile.flush()
                self.close_connection = True
                return
            frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server naming)
        """Quiet: tests read ``server.requests`` instead of a log."""


# ------------------------------------------------------------------ helpers


def _rate_limit_headers(*, exhausted: bool = False, reset_after: float | None = None) -> dict[str, str]:
    now = time.time()
    reset = _rfc3339(math.ceil(now + reset_after)) if reset_after is not None else _rfc3339(int(now))
    headers = {}
    for family, limit in RATE_LIMITS.items():
        headers[f"anthropic-ratelimit-{family}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{family}-remaining"] = "0" if exhausted else str(limit - 1)
        headers[f"anthropic-ratelimit-{family}-reset"] = reset
    return headers


def _fault_error(status: int) -> tuple[str, str]:
    """The error type and message a fault answering ``status`` sends."""
    fallback_type = "api_error" if status >= 500 else "invalid_request_error"
    return ERROR_TYPES.get(status, fallback_type), FAULT_MESSAGES.get(status, f"Offline fault: HTTP {status}")


def _error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def _api_key_present(headers: Any) -> bool:
    """x-api-key, or an API key as a bearer token (what SDK 2.x sends)."""
    if (headers.get("x-api-key") or "").strip():
        return True
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b["text"] for b in _blocks(content) if b.get("type") == "text" and isinstance(b.get("text"), str))


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()[:24]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _tokens(text: str) -> int:
    return _tokens_of_size(len(text))


def _tokens_of_size(size: int) -> int:
    return math.ceil(size / 4)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Anthropic Messages API offline (deterministic).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--latency", type=float, default=0.0, help="how long a model call takes, seconds")
    parser.add_argument("--tokens-per-second", type=float, default=0.0,
                        help="the rate a streamed answer comes at (0: all at once, after the latency)")
    args = parser.parse_args(argv)
    server = OfflineModelServer(args.host, args.port, latency_seconds=args.latency,
                                tokens_per_second=args.tokens_per_second)
    print(server.start(), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
