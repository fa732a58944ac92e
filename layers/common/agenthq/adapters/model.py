"""The model adapter: Claude through the official ``anthropic`` SDK.

The run engine calls ``ModelClient.create_message``; ``AnthropicModel`` is the one
real implementation. It honours ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``
when no key or URL is given, so the local cloud's offline model server and the
real API take the same code path.

Every call is streamed (``"stream": true``, as the SDK requires for long
answers): the answer is put together from the stream's events as the API sent
them, and its usage is what the stream reported (``message_start``'s, with
``message_delta``'s cumulative counts over it). The timeout is the longest the
API may stay silent (before its headers, or between two events), not a bound on
a whole answer, so a slow but steady answer is never cut off.

A call whose answer never arrives — a timeout, a connection dropped once the
request was sent, a stream that ends or errs before ``message_stop`` — may still
be billed by Anthropic: each such attempt is an ``UnansweredCall`` on the
response (or on the error, when no attempt was answered), so that its cost can
be metered at the call's upper bound. An error answer before the stream starts
(429, 529, other 5xx, 4xx) and a connection never made are not billed, and are
not listed.

Retries are ours, not the SDK's (it runs with ``max_retries=0``): 429, 529, other
5xx, 408, timeouts and connection errors are retried up to ``max_attempts``
times. The wait before a retry is, in order of preference:

1. the server's ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date);
2. for a 429 only, the earliest ``anthropic-ratelimit-*-reset`` (RFC 3339) still
   in the future among the exhausted limits (``-remaining: 0``; all limits if
   none says so);
3. exponential backoff with full jitter (base 0.5 s, cap 8 s).

The waits never add up to more than ``max_wait_seconds``: when the next one
would, ``ModelUnavailable`` is raised at once (with ``retry_after_seconds``, so
the caller can reschedule instead of holding a Lambda). A 429 whose
``error.details.error_code`` is a spend limit is not retried.

The SDK costs ~2.6 s to import, so it is imported on the first call, never at
module import time.
"""

from __future__ import annotations

import email.utils
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from agenthq.observability import MODEL_THROTTLES, count
from agenthq.usage.vector import TokenUsage

if TYPE_CHECKING:  # pragma: no cover
    import anthropic

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
RATE_LIMIT_FAMILIES = ("requests", "tokens", "input-tokens", "output-tokens")
RETRYABLE_STATUSES = frozenset({408, 429})  # plus every 5xx (529 included)
SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached", "contract_spend_limit_reached"})


# ---------------------------------------------------------------------- types


@dataclass(frozen=True)
class ModelRequest:
    """One Messages API call: plain JSON-able values as the API takes them."""

    model: str
    system: str | list[dict[str, Any]] | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    max_tokens: int
    metadata_user_id: str | None = None


@dataclass(frozen=True)
class UnansweredCall:
    """An attempt the API may bill whose answer never arrived: ``id`` is the
    message id if the stream said it before it broke, else one of our own
    (``unanswered_<hex>``); unique per attempt, so metering it is idempotent."""

    id: str
    reason: str


@dataclass(frozen=True)
class ModelResponse:
    """The assistant message; ``content`` holds plain JSON blocks as the API sent them.
    ``unanswered``: the earlier attempts of this call that may be billed (``UnansweredCall``)."""

    id: str
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: TokenUsage = field(default_factory=TokenUsage)
    attempts: int = 1
    request_id: str | None = None
    unanswered: tuple[UnansweredCall, ...] = ()


class ModelError(Exception):
    """The model could not answer. ``retryable`` says whether trying later may help."""

    retryable: bool = False

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        retry_after_seconds: float | None = None,
        unanswered: tuple[UnansweredCall, ...] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.attempts = attempts
        self.retry_after_seconds = retry_after_seconds
        self.unanswered = unanswered  # the attempts that may be billed (UnansweredCall)


class ModelUnavailable(ModelError):
    """Rate limited, overloaded, failing or unreachable, after our retries."""

    retryable = True


class ModelRequestRejected(ModelError):
    """The API refused the request itself (400, 401, 403, 404, 413...): do not retry."""

    retryable = False


class ModelClient(Protocol):
    def create_message(self, request: ModelRequest) -> ModelResponse: ...


# ------------------------------------------------------------------ adapter


class _Failure(NamedTuple):
    what: str  # e.g. "model overloaded (529)"
    status: int | None
    retryable: bool
    server_wait: float | None  # what the server asked us to wait, if it said


class _StreamBroken(Exception):
    """The answer's stream began but never reached ``message_stop``."""

    def __init__(self, what: str, message_id: str | None, retryable: bool = True) -> None:
        super().__init__(what)
        self.what, self.message_id, self.retryable = what, message_id, retryable


class AnthropicModel:
    """``ModelClient`` on the official SDK, with our own bounded retries."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout_seconds: float = 60.0,
        max_attempts: int = 4,
        max_wait_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_seconds = timeout_seconds
        self._max_attempts = max_attempts
        self._max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # nosec B311  # retry jitter, not a secret
        self._lock = threading.Lock()
        self._client: anthropic.Anthropic | None = None

    def create_message(self, request: ModelRequest) -> ModelResponse:
        """Call the Messages API, retrying transient failures within the budget."""
        import anthropic

        client = self._sdk_client()
        arguments = _sdk_arguments(request)
        waited = 0.0
        attempt = 0
        unanswered: list[UnansweredCall] = []
        while True:
            attempt += 1
            cause: Exception
            try:
                return self._stream(client, arguments, attempt, tuple(unanswered))
            except anthropic.APIStatusError as exc:  # an error answer before the stream began: not billed
                failure, cause = self._status_failure(exc), exc
                if exc.status_code in (429, 529):  # the API's rate limits or capacity: the operator's concern
                    count(MODEL_THROTTLES)
            except anthropic.APITimeoutError as exc:
                failure = _Failure(f"model request timed out ({self._timeout_seconds:g}s)", None, True, None)
                cause = exc
                if _was_sent(exc):  # the API may be answering it (and billing it) still
                    unanswered.append(UnansweredCall(_own_call_id(), failure.what))
            except anthropic.APIConnectionError as exc:
                cause = exc
                if _was_sent(exc):
                    failure = _Failure("the connection to the model API dropped", None, True, None)
                    unanswered.append(UnansweredCall(_own_call_id(), failure.what))
                else:
                    failure = _Failure("could not connect to the model API", None, True, None)
            except _StreamBroken as exc:
                failure, cause = _Failure(exc.what, None, exc.retryable, None), exc
                unanswered.append(UnansweredCall(exc.message_id or _own_call_id(), exc.what))

            if not failure.retryable:
                raise ModelRequestRejected(failure.what, status=failure.status, attempts=attempt,
                                           unanswered=tuple(unanswered)) from cause
            wait = failure.server_wait if failure.server_wait is not None else self._backoff(attempt)
            if attempt >= self._max_attempts:
                raise ModelUnavailable(
                    f"{failure.what} after {_attempts(attempt)}",
                    status=failure.status,
                    attempts=attempt,
                    retry_after_seconds=failure.server_wait,
                    unanswered=tuple(unanswered),
                ) from cause
            if waited + wait > self._max_wait_seconds:
                raise ModelUnavailable(
                    f"{failure.what} after {_attempts(attempt)}: the next retry in {wait:.1f}s "
                    f"would exceed the {self._max_wait_seconds:g}s wait budget",
                    status=failure.status,
                    attempts=attempt,
                    retry_after_seconds=wait,
                    unanswered=tuple(unanswered),
                ) from cause
            self._sleep(wait)
            waited += wait

    def _stream(self, client: anthropic.Anthropic, arguments: dict[str, Any], attempt: int,
                unanswered: tuple[UnansweredCall, ...]) -> ModelResponse:
        """One attempt, streamed: the answer as its events put it together. Raises
        the SDK's errors for a failure before the stream began, ``_StreamBroken``
        for one after."""
        import anthropic
        import httpx2

        stream = client.messages.create(stream=True, **arguments)
        answer = _StreamedAnswer()
        try:
            with stream:
                for event in stream:
                    answer.add(event.to_dict(mode="json"))
        except anthropic.APIStatusError as exc:  # an error event in the stream
            error_type = _error_type(exc.body) or "error"
            raise _StreamBroken(f"the model API's stream ended in an error ({error_type})", answer.message_id,
                                retryable=error_type in ("overloaded_error", "api_error", "rate_limit_error",
                                                         "timeout_error")) from exc
        except (httpx2.TimeoutException, anthropic.APITimeoutError) as exc:
            raise _StreamBroken(f"the model API's stream stalled ({self._timeout_seconds:g}s without an event)",
                                answer.message_id) from exc
        except (httpx2.HTTPError, anthropic.APIConnectionError) as exc:
            raise _StreamBroken("the model API's stream was cut off", answer.message_id) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _StreamBroken("the model API sent a malformed stream", answer.message_id) from exc
        try:
            return answer.response(attempt, stream.response.headers.get("request-id"), unanswered)
        except (ValueError, KeyError, TypeError) as exc:
            raise _StreamBroken("the model API sent a malformed stream", answer.message_id) from exc

    def close(self) -> None:
        """Close the SDK's connection pool (if one was opened)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _sdk_client(self) -> anthropic.Anthropic:
        with self._lock:
            if self._client is None:
                import anthropic

                self._client = anthropic.Anthropic(
                    api_key=self._api_key,
                    base_url=self._base_url,
                    max_retries=0,
                    timeout=self._timeout_seconds,
                )
            return self._client

    def _status_failure(self, exc: anthropic.APIStatusError) -> _Failure:
        status = exc.status_code
        error_type = getattr(exc, "type", None) or _error_type(exc.body)
        message = getattr(exc, "api_message", None) or exc.message
        if status == 429 and getattr(exc, "error_code", None) in SPEND_LIMIT_CODES:
            return _Failure(f"spend limit reached (429): {message}", status, False, None)
        if status in RETRYABLE_STATUSES or status >= 500:
            if status == 429:
                what = "rate limited (429)"
            elif status == 529:
                what = "model overloaded (529)"
            else:
                what = f"model API error ({status} {error_type or 'api_error'})"
            return _Failure(what, status, True, server_suggested_wait(exc.response.headers, status, self._clock()))
        return _Failure(f"model request rejected ({status} {error_type or 'error'}): {message}", status, False, None)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the wait after ``attempt``."""
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)


def server_suggested_wait(headers: Mapping[str, str], status: int, now: float) -> float | None:
    """Seconds the server asks us to wait before retrying, or None if it does not say.

    ``headers`` must look names up case-insensitively (httpx headers do).
    """
    retry_after_ms = headers.get("retry-after-ms")
    if retry_after_ms:
        try:
            return max(0.0, float(retry_after_ms) / 1000)
        except ValueError:
            pass
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    if status != 429:
        return None
    resets: dict[str, float] = {}
    exhausted: set[str] = set()
    for family in RATE_LIMIT_FAMILIES:
        reset = _parse_rfc3339(headers.get(f"anthropic-ratelimit-{family}-reset"))
        if reset is not None and reset > now:
            resets[family] = reset - now
        if (headers.get(f"anthropic-ratelimit-{family}-remaining") or "").strip() == "0":
            exhausted.add(family)
    relevant = [wait for family, wait in resets.items() if family in exhausted] if exhausted else list(resets.values())
    return min(relevant) if relevant else None


# ------------------------------------------------------------------ helpers


def _sdk_arguments(request: ModelRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": request.messages,
    }
    if request.system:
        arguments["system"] = request.system
    if request.tools:
        arguments["tools"] = request.tools
    if request.metadata_user_id:
        arguments["metadata"] = {"user_id": request.metadata_user_id}
    return arguments


class _StreamedAnswer:
    """A message put together from its stream's events (plain JSON, as sent)."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, str] = {}
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.complete = False

    @property
    def message_id(self) -> str | None:
        return str(self.message["id"]) if self.message is not None and self.message.get("id") else None

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self.message = dict(event["message"])
            self.usage = dict(self.message.get("usage") or {})
            self.stop_reason = self.message.get("stop_reason")
        elif kind == "content_block_start":
            self.blocks[int(event["index"])] = dict(event["content_block"])
        elif kind == "content_block_delta":
            block, delta = self.blocks[int(event["index"])], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "input_json_delta":
                index = int(event["index"])
                self.partial_json[index] = self.partial_json.get(index, "") + delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "citations_delta":
                block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        elif kind == "message_delta":
            self.stop_reason = event.get("delta", {}).get("stop_reason", self.stop_reason)
            # cumulative counts: a count the delta gives replaces message_start's
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self.complete = True

    def response(self, attempts: int, request_id: str | None,
                 unanswered: tuple[UnansweredCall, ...]) -> ModelResponse:
        if self.message is None or not self.complete:
            raise _StreamBroken("the model API's stream ended before the answer did", self.message_id)
        for index, text in self.partial_json.items():
            self.blocks[index]["input"] = json.loads(text) if text.strip() else {}
        return ModelResponse(
            id=str(self.message["id"]),
            model=str(self.message["model"]),
            content=[self.blocks[index] for index in sorted(self.blocks)],
            stop_reason=self.stop_reason,
            usage=TokenUsage(
                input_tokens=int(self.usage.get("input_tokens") or 0),
                output_tokens=int(self.usage.get("output_tokens") or 0),
                cache_write_tokens=int(self.usage.get("cache_creation_input_tokens") or 0),
                cache_read_tokens=int(self.usage.get("cache_read_input_tokens") or 0),
            ),
            attempts=attempts,
            request_id=request_id,
            unanswered=unanswered,
        )


def _was_sent(exc: Exception) -> bool:
    """Whether a connection error or timeout came after the request could reach
    the API (not while connecting, nor while waiting for a pooled connection)."""
    import httpx2

    return not isinstance(exc.__cause__, (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout))


def _own_call_id() -> str:
    return f"unanswered_{secrets.token_hex(12)}"


def _error_type(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        value = body["error"].get("type")
        return value if isinstance(value, str) else None
    return None


def _parse_rfc3339(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"
