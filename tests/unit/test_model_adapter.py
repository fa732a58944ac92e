"""AnthropicModel: the real SDK against a real offline model server, with a fake sleep."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path

import pytest

from agenthq.adapters.model import (
    AnthropicModel,
    ModelError,
    ModelRequest,
    ModelRequestRejected,
    ModelResponse,
    ModelUnavailable,
    TokenUsage,
    server_suggested_wait,
)
from local.model_server import OfflineModelServer

REPO = Path(__file__).resolve().parents[2]
MODEL = "claude-offline-test"
LOOKUP = {"name": "lookup", "description": "Look a thing up.", "input_schema": {"type": "object"}}


class RecordingSleep:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)




@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_model(server: OfflineModelServer, sleep: RecordingSleep):
    models: list[AnthropicModel] = []

    def make(**options) -> AnthropicModel:
        options = {"api_key": "offline-test-key", "base_url": server.base_url, "timeout_seconds": 5, "sleep": sleep, **options}
        models.append(AnthropicModel(**options))
        return models[-1]

    yield make
    for model in models:
        model.close()


def ask(text: str, **overrides) -> ModelRequest:
    fields = {"model": MODEL, "system": None, "messages": [{"role": "user", "content": text}], "tools": [], "max_tokens": 100}
    return ModelRequest(**{**fields, **overrides})


def requests_matching(server: OfflineModelServer, marker: str) -> int:
    return sum(marker in str(body) for body in server.requests)


# ------------------------------------------------------------------ success


def test_success_returns_plain_content_usage_and_attempts(make_model, sleep):
    system = [{"type": "text", "text": "Adapter system prompt. " * 30 + "adapter-cache-1", "cache_control": {"type": "ephemeral"}}]
    model = make_model()

    first = model.create_message(ask("hello adapter", system=system, metadata_user_id="user-1"))
    second = model.create_message(ask("hello adapter", system=system))

    assert isinstance(first, ModelResponse)
    assert first.content == [{"type": "text", "text": "Offline answer: hello adapter"}]
    assert first.stop_reason == "end_turn" and first.model == MODEL and first.id.startswith("msg_")
    assert first.attempts == 1 and sleep.waits == []
    assert first.request_id and first.request_id.startswith("req_")
    assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert second.usage == TokenUsage(
        input_tokens=first.usage.input_tokens,
        output_tokens=second.usage.output_tokens,
        cache_write_tokens=0,
        cache_read_tokens=first.usage.cache_write_tokens,
    )


def test_tool_use_round_trip_with_plain_dicts(make_model, server):
    model = make_model()
    question = {"role": "user", "content": 'Look it up\n/tool lookup {"q": "x"}'}
    turn = model.create_message(ask("", messages=[question], tools=[LOOKUP]))
    assert turn.stop_reason == "tool_use"
    [call] = turn.content
    assert call == {"type": "tool_use", "id": call["id"], "name": "lookup", "input": {"q": "x"}}

    history = [
        question,
        {"role": "assistant", "content": turn.content},  # sent back exactly as received
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "child says 42"}]},
    ]
    final = model.create_message(ask("", messages=history, tools=[LOOKUP]))
    assert final.content[0]["text"] == "Offline answer: Look it up\nlookup: child says 42"


def test_anthropic_base_url_from_the_environment_is_honoured(server, sleep, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-the-environment")
    model = AnthropicModel(sleep=sleep)
    try:
        assert model.create_message(ask("via env-marker")).content[0]["text"] == "Offline answer: via env-marker"
    finally:
        model.close()


# ------------------------------------------------------------------ retries


def test_429_once_then_success_waits_exactly_retry_after(make_model, server, sleep):
    server.faults.add({"status": 429, "retry_after": 3, "match": "retry-after-marker"})

    response = make_model().create_message(ask("retry-after-marker"))

    assert response.attempts == 2 and response.stop_reason == "end_turn"
    assert sleep.waits == [3.0]
    assert requests_matching(server, "retry-after-marker") == 2


def test_529_forever_gives_up_after_max_attempts_within_the_budget(make_model, server, sleep):
    server.faults.add({"status": 529, "times": None, "match": "overloaded-marker"})

    with pytest.raises(ModelUnavailable) as caught:
        make_model(max_attempts=4, max_wait_seconds=30).create_message(ask("overloaded-marker"))

    error = caught.value
    assert error.status == 529 and error.attempts == 4 and error.retryable
    assert error.reason == "model overloaded (529) after 4 attempts"
    assert len(sleep.waits) == 3 and sum(sleep.waits) <= 30
    assert all(0 <= wait <= 8 for wait in sleep.waits)  # full-jitter backoff, no retry-after sent
    assert requests_matching(server, "overloaded-marker") == 4


def test_a_wait_beyond_the_budget_gives_up_at_once(make_model, server, sleep):
    server.faults.add({"status": 529, "times": None, "retry_after": 20, "match": "budget-marker"})

    with pytest.raises(ModelUnavailable) as caught:
        make_model(max_wait_seconds=30).create_message(ask("budget-marker"))

    assert sleep.waits == [20.0]  # the second 20 s wait would exceed 30 s in total
    assert caught.value.attempts == 2 and caught.value.status == 529
    assert caught.value.retry_after_seconds == 20.0
    assert "wait budget" in caught.value.reason


def test_tokens_reset_header_is_honoured_without_retry_after(make_model, server, sleep):
    server.faults.add({"status": 429, "reset_after": 2, "match": "reset-marker"})

    response = make_model().create_message(ask("reset-marker"))

    assert response.attempts == 2
    [wait] = sleep.waits
    assert 1.0 <= wait <= 3.0  # the reset is sent in whole seconds, rounded up


def test_400_is_rejected_at_once_without_retry(make_model, server, sleep):
    bad = [
        {"role": "user", "content": "reject-marker"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_other", "content": "x"}]},
    ]
    with pytest.raises(ModelRequestRejected) as caught:
        make_model().create_message(ask("", messages=bad, tools=[LOOKUP]))

    assert caught.value.status == 400 and caught.value.attempts == 1 and not caught.value.retryable
    assert "invalid_request_error" in caught.value.reason and "tool_use_id" in caught.value.reason
    assert sleep.waits == []
    assert requests_matching(server, "reject-marker") == 1


def test_a_stall_beyond_the_timeout_is_retried_as_a_timeout(make_model, server, sleep):
    server.faults.add({"stall_seconds": 1.0, "match": "stall-marker"})

    response = make_model(timeout_seconds=0.25).create_message(ask("stall-marker"))

    assert response.attempts == 2
    assert len(sleep.waits) == 1 and 0 <= sleep.waits[0] <= 0.5  # first backoff step


def test_timeouts_forever_end_as_unavailable_without_status(make_model, server, sleep):
    server.faults.add({"stall_seconds": 1.0, "times": 2, "match": "stall-forever-marker"})

    with pytest.raises(ModelUnavailable) as caught:
        make_model(timeout_seconds=0.2, max_attempts=2).create_message(ask("stall-forever-marker"))

    assert caught.value.status is None and caught.value.attempts == 2
    assert caught.value.reason == "model request timed out (0.2s) after 2 attempts"


# ------------------------------------------------------- calls that may be billed unanswered


def test_a_timed_out_attempt_is_listed_as_unanswered_on_the_answer(make_model, server, sleep):
    server.clear_billing()
    server.faults.add({"stall_seconds": 0.6, "match": "stall-unanswered-marker"})

    response = make_model(timeout_seconds=0.2).create_message(ask("stall-unanswered-marker",
                                                                  metadata_user_id="ws-unanswered"))

    assert response.attempts == 2
    (lost,) = response.unanswered
    assert lost.id.startswith("unanswered_") and "timed out" in lost.reason
    assert lost.id != response.id


def test_a_stream_cut_off_midway_is_retried_and_listed_under_its_message_id(make_model, server, sleep):
    server.clear_billing()
    server.faults.add({"cut_after_events": 4, "match": "cut-unanswered-marker"})

    response = make_model().create_message(ask("cut-unanswered-marker " * 20, max_tokens=400,
                                               metadata_user_id="ws-cut-adapter"))

    assert response.attempts == 2 and response.stop_reason == "end_turn"
    (lost,) = response.unanswered
    assert "cut off" in lost.reason
    billed = server.billed("ws-cut-adapter")
    assert [b["id"] for b in billed] == [lost.id, response.id], "both calls were answered (and billed)"
    assert response.usage.output_tokens == billed[1]["output_tokens"]
    assert response.usage.input_tokens == billed[1]["input_tokens"]


def test_an_error_event_mid_stream_is_retried_and_listed_or_rejected_and_listed(make_model, server, sleep):
    server.faults.add({"status": 529, "cut_after_events": 3, "match": "overloaded-mid-stream"})
    response = make_model().create_message(ask("overloaded-mid-stream"))
    assert response.attempts == 2 and response.stop_reason == "end_turn"
    (lost,) = response.unanswered
    assert lost.id.startswith("msg_") and "overloaded_error" in lost.reason

    server.faults.add({"status": 400, "cut_after_events": 3, "match": "refused-mid-stream"})
    with pytest.raises(ModelRequestRejected) as caught:
        make_model().create_message(ask("refused-mid-stream"))
    assert caught.value.attempts == 1 and len(caught.value.unanswered) == 1


def test_calls_that_time_out_every_time_are_listed_on_the_error(make_model, server, sleep):
    server.faults.add({"stall_seconds": 0.5, "times": 3, "match": "stall-thrice-marker"})

    with pytest.raises(ModelUnavailable) as caught:
        make_model(timeout_seconds=0.15, max_attempts=3).create_message(ask("stall-thrice-marker"))

    assert len(caught.value.unanswered) == 3 and len({c.id for c in caught.value.unanswered}) == 3


def test_error_answers_and_refused_connections_are_not_unanswered_calls(make_model, server, sleep):
    server.faults.add({"status": 529, "times": 1, "match": "overloaded-once-marker"})
    assert make_model().create_message(ask("overloaded-once-marker")).unanswered == ()
    server.faults.add({"status": 529, "times": None, "match": "overloaded-always-marker"})
    with pytest.raises(ModelUnavailable) as caught:
        make_model(max_attempts=2).create_message(ask("overloaded-always-marker"))
    assert caught.value.unanswered == ()
    server.faults.clear()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(ModelUnavailable) as refused:
        AnthropicModel(api_key="k", base_url=f"http://127.0.0.1:{closed_port}", max_attempts=2,
                       sleep=sleep).create_message(ask("nobody home"))
    assert refused.value.unanswered == ()


def test_a_long_answer_is_streamed_and_cut_at_max_tokens(make_model):
    response = make_model().create_message(ask("Go on and on. " * 200, max_tokens=50))
    assert response.stop_reason == "max_tokens" and 0 < response.usage.output_tokens <= 50
    assert response.content[0]["text"].startswith("Offline answer: Go on and on.")


def test_match_keeps_a_fault_to_its_own_requests(make_model, server, sleep):
    server.faults.add({"status": 529, "times": None, "match": "run-A-marker"})
    model = make_model(max_attempts=2)

    assert model.create_message(ask("run-B-marker")).attempts == 1
    with pytest.raises(ModelUnavailable):
        model.create_message(ask("run-A-marker"))
    assert requests_matching(server, "run-A-marker") == 2


def test_unreachable_api_is_unavailable(sleep):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    model = AnthropicModel(api_key="k", base_url=f"http://127.0.0.1:{closed_port}", max_attempts=2, sleep=sleep)

    with pytest.raises(ModelUnavailable, match="could not connect to the model API after 2 attempts") as caught:
        model.create_message(ask("nobody home"))
    assert caught.value.status is None and len(sleep.waits) == 1
    model.close()


# ------------------------------------------------------------ header parsing


def test_server_suggested_wait_reads_every_header_form():
    now = 1_800_000_000.0
    assert server_suggested_wait({"retry-after": "4"}, 529, now) == 4.0
    assert server_suggested_wait({"retry-after-ms": "250", "retry-after": "4"}, 429, now) == 0.25
    assert server_suggested_wait({"retry-after": formatdate(now + 9, usegmt=True)}, 503, now) == pytest.approx(9, abs=1)
    resets = {
        "anthropic-ratelimit-requests-remaining": "10",
        "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:02Z",  # not exhausted: ignored
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2027-01-15T08:00:05Z",
    }
    at = datetime(2027, 1, 15, 8, 0, 0, tzinfo=timezone.utc).timestamp()
    assert server_suggested_wait(resets, 429, at) == pytest.approx(5)
    assert server_suggested_wait(resets, 529, at) is None  # resets are about rate limits only
    assert server_suggested_wait({"anthropic-ratelimit-tokens-reset": "2027-01-15T07:59:00Z"}, 429, at) is None


def test_errors_form_one_hierarchy():
    assert issubclass(ModelUnavailable, ModelError) and issubclass(ModelRequestRejected, ModelError)
    assert ModelUnavailable("x").retryable and not ModelRequestRejected("x").retryable


# ------------------------------------------------------------- import cost


def test_importing_the_adapter_does_not_import_the_sdk():
    env = {**os.environ, "PYTHONPATH": str(REPO / "layers" / "common")}
    probe = "import sys, agenthq.adapters.model; print('anthropic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert result.stdout.strip() == "False"
