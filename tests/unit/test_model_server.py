"""The offline model server, driven by the real ``anthropic`` SDK over 127.0.0.1."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import anthropic
import httpx
import pytest

from local.model_server import Fault, OfflineModelServer

MODEL = "claude-offline-test"
LOOKUP = {"name": "lookup", "description": "Look a thing up.", "input_schema": {"type": "object"}}
CLOCK = {"name": "clock", "description": "Tell the time.", "input_schema": {"type": "object"}}




@pytest.fixture(scope="module")
def client(server: OfflineModelServer):
    sdk = anthropic.Anthropic(api_key="offline-test-key", base_url=server.base_url, max_retries=0, timeout=5)
    yield sdk
    sdk.close()


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=5) as plain_client:
        yield plain_client


def post(
    http: httpx.Client, server: OfflineModelServer, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    default = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    return http.post(server.base_url + path, json=body, headers=default if headers is None else headers)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# ------------------------------------------------------------------ answers


def test_plain_answer_echoes_the_input_with_usage_and_headers(client: anthropic.Anthropic):
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=200, messages=[user("  Hello there  ")])
    message = raw.parse()

    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == MODEL
    assert [block.to_dict() for block in message.content] == [{"type": "text", "text": "Offline answer: Hello there"}]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    expected_input = -(-len(json.dumps({"messages": [user("  Hello there  ")]})) // 4)
    assert message.usage.input_tokens == expected_input
    assert message.usage.output_tokens >= 1
    assert message.usage.cache_creation_input_tokens == 0 and message.usage.cache_read_input_tokens == 0

    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["content-type"] == "application/json"
    for family in ("requests", "tokens"):
        assert int(raw.headers[f"anthropic-ratelimit-{family}-limit"]) > 0
        assert int(raw.headers[f"anthropic-ratelimit-{family}-remaining"]) > 0
        datetime.fromisoformat(raw.headers[f"anthropic-ratelimit-{family}-reset"])  # RFC 3339


def test_tool_directive_then_tool_result_then_final_answer(client: anthropic.Anthropic):
    question = user('What is the answer?\n/tool lookup {"query": "answer"}')
    first = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP], messages=[question])

    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert call.type == "tool_use" and call.name == "lookup" and call.input == {"query": "answer"}
    assert call.id.startswith("toolu_")

    history = [
        question,
        {"role": "assistant", "content": [block.to_dict() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}]},
    ]
    final = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP], messages=history)

    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "Offline answer: What is the answer?\nlookup: 42"


def test_parallel_tools_directive_skips_tools_not_offered(client: anthropic.Anthropic):
    calls = [
        {"name": "lookup", "input": {"query": "a"}},
        {"name": "not_offered", "input": {}},
        {"name": "clock", "input": {}},
    ]
    question = user(f"Do both\n/tool not_offered {{}}\n/tools {json.dumps(calls)}")
    message = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP, CLOCK], messages=[question])

    assert message.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in message.content] == [("lookup", {"query": "a"}), ("clock", {})]
    assert len({b.id for b in message.content}) == 2

    results = [
        {"type": "tool_result", "tool_use_id": message.content[0].id, "content": [{"type": "text", "text": "found a"}]},
        {"type": "tool_result", "tool_use_id": message.content[1].id, "content": "noon"},
    ]
    history = [
        question,
        {"role": "assistant", "content": [b.to_dict() for b in message.content]},
        {"role": "user", "content": results},
    ]
    final = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP, CLOCK], messages=history)
    assert final.content[0].text == "Offline answer: Do both\nlookup: found a\nclock: noon"


def test_stop_directive_sets_the_stop_reason(client: anthropic.Anthropic):
    message = client.messages.create(model=MODEL, max_tokens=200, messages=[user("Write a lot\n/stop max_tokens")])
    assert message.stop_reason == "max_tokens"

    history = [
        user("Write a lot\n/stop max_tokens"),
        {"role": "assistant", "content": message.content[0].text},
        user("go on"),
    ]
    assert client.messages.create(model=MODEL, max_tokens=200, messages=history).stop_reason == "end_turn"


def test_a_multi_turn_conversation_answers_the_latest_user_turn_and_logs_the_whole_prompt(
        server: OfflineModelServer, client: anthropic.Anthropic):
    first_input = user('Count the hosts\n/tool lookup {"query": "hosts"}')
    call = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP], messages=[first_input])
    [use] = call.content
    turn_one = [
        first_input,
        {"role": "assistant", "content": [use.to_dict()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "3 hosts"}]},
    ]
    answer_one = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP], messages=turn_one)
    assert answer_one.content[0].text == "Offline answer: Count the hosts\nlookup: 3 hosts"

    # The second turn: its own directives play (the first turn's are history), its own tool results are listed.
    second_input = user('And now staging\n/tool clock {}')
    history = [*turn_one, {"role": "assistant", "content": [b.to_dict() for b in answer_one.content]}, second_input]
    call_two = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP, CLOCK], messages=history)
    [use_two] = call_two.content
    assert (use_two.name, use_two.input) == ("clock", {})
    turn_two = [*history, {"role": "assistant", "content": [use_two.to_dict()]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_two.id, "content": "noon"}]}]
    answer_two = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP, CLOCK], messages=turn_two)
    assert answer_two.stop_reason == "end_turn"
    assert answer_two.content[0].text == "Offline answer: And now staging\nclock: noon"

    received = server.requests[-1]["messages"]
    assert received[0]["content"] == first_input["content"], "the first turn is in the second turn's prompt"
    assert len(received) == 7


def test_answers_are_deterministic_and_each_call_is_a_new_message(client: anthropic.Anthropic):
    request = {"model": MODEL, "max_tokens": 50, "tools": [LOOKUP], "messages": [user("/tool lookup {}")]}
    first, second = client.messages.create(**request), client.messages.create(**request)
    assert first.content == second.content and first.content[0].id == second.content[0].id
    assert first.id != second.id, "as with the real API, each call is billed as its own message"


def test_the_request_log_and_status_counters(server: OfflineModelServer, client: anthropic.Anthropic):
    before = server.status_counts.get(200, 0)
    client.messages.create(model=MODEL, max_tokens=10, messages=[user("log me: log-marker-7")])
    assert server.status_counts[200] == before + 1
    assert server.requests[-1]["messages"][0]["content"] == "log me: log-marker-7"


def test_count_tokens_endpoint(client: anthropic.Anthropic):
    counted = client.messages.count_tokens(model=MODEL, messages=[user("count me")])
    assert counted.input_tokens == -(-len(json.dumps({"messages": [user("count me")]})) // 4)


# --------------------------------------------------------------- validation


def _tool_turn(tool_id: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "lookup", "input": {}}]}


@pytest.mark.parametrize(
    ("messages", "tools", "expected"),
    [
        pytest.param(
            [user("q"), _tool_turn("toolu_a"), {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_b", "content": "x"}]}],
            [LOOKUP],
            "unexpected `tool_use_id`",
            id="tool-result-id-not-in-previous-message",
        ),
        pytest.param([user("a"), user("b")], None, "roles must alternate", id="roles-not-alternating"),
        pytest.param([{"role": "assistant", "content": "hi"}], None, 'first message must use the "user" role', id="first-not-user"),
        pytest.param(
            [user("q"), _tool_turn("toolu_a"), user("no results here")],
            [LOOKUP],
            "ids were found without `tool_result` blocks immediately after: toolu_a",
            id="tool-use-not-answered",
        ),
        pytest.param(
            [
                user("q"),
                _tool_turn("toolu_a"),
                {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"}]},
            ],
            [LOOKUP],
            "immediately after",
            id="tool-result-not-at-the-start",
        ),
        pytest.param([user("q")], [{"name": "broken"}], "input_schema", id="tool-without-input-schema"),
        pytest.param([user("q")], [{"input_schema": {"type": "object"}}], "name", id="tool-without-name"),
        pytest.param([], None, "messages", id="no-messages"),
    ],
)
def test_invalid_requests_are_400_bad_request(client: anthropic.Anthropic, messages, tools, expected):
    extra = {"tools": tools} if tools is not None else {}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=messages, **extra)
    assert caught.value.type == "invalid_request_error"
    assert expected in caught.value.api_message
    assert caught.value.body["type"] == "error" and caught.value.request_id.startswith("req_")


# ---------------------------------------------------------- streaming, max_tokens, billing


def test_a_streamed_answer_is_the_same_answer_as_server_sent_events(client: anthropic.Anthropic):
    """The SDK's own stream helper puts together exactly the message a plain call answers."""
    question = user('Stream me\n/tools [{"name": "lookup", "input": {"q": "x"}}, {"name": "clock", "input": {}}]')
    plain = client.messages.create(model=MODEL, max_tokens=200, tools=[LOOKUP, CLOCK], messages=[question])
    with client.messages.stream(model=MODEL, max_tokens=200, tools=[LOOKUP, CLOCK], messages=[question]) as stream:
        types = [event.type for event in stream]
        streamed = stream.get_final_message()
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert [b.to_dict() for b in streamed.content] == [b.to_dict() for b in plain.content]
    assert streamed.stop_reason == plain.stop_reason == "tool_use"
    assert streamed.usage.input_tokens == plain.usage.input_tokens
    assert streamed.usage.output_tokens == plain.usage.output_tokens > 1
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types.count("content_block_start") == types.count("content_block_stop") == 2


def test_max_tokens_is_honoured_and_only_the_tokens_produced_are_reported(client: anthropic.Anthropic):
    long_question = [user("Tell me everything. " * 40)]
    full = client.messages.create(model=MODEL, max_tokens=4096, messages=long_question)
    assert full.stop_reason == "end_turn" and full.usage.output_tokens > 20

    for max_tokens in (20, 7, 1):
        cut = client.messages.create(model=MODEL, max_tokens=max_tokens, messages=long_question)
        assert cut.stop_reason == "max_tokens"
        assert cut.usage.output_tokens <= max_tokens
        content = [b.to_dict() for b in cut.content]
        assert cut.usage.output_tokens == min(max_tokens, max(1, -(-len(json.dumps(content)) // 4)))
        if content:
            assert full.content[0].text.startswith(content[0]["text"]) and content[0]["text"]

    tools = [user('/tools [{"name": "lookup", "input": {"q": "' + "y" * 300 + '"}}, {"name": "clock", "input": {}}]')]
    turn = client.messages.create(model=MODEL, max_tokens=30, tools=[LOOKUP, CLOCK], messages=tools)
    assert turn.stop_reason == "max_tokens" and turn.usage.output_tokens <= 30
    assert all(block.type == "tool_use" and block.name != "lookup" for block in turn.content)  # whole calls only


def test_a_cut_fault_drops_the_stream_after_n_events_and_the_answer_is_still_billed(server, client):
    server.faults.add({"cut_after_events": 3, "match": "cut-marker"})
    stream = client.messages.create(model=MODEL, max_tokens=100, messages=[user("cut-marker " * 30)], stream=True,
                                    metadata={"user_id": "ws-cut"})
    seen = []
    with pytest.raises(Exception) as caught:  # the SDK lets the transport's error through mid-stream
        for event in stream:
            seen.append(event.type)
    assert "incomplete" in str(caught.value) or "closed" in str(caught.value)
    assert seen == ["message_start", "content_block_start"], "the third event was the ping the SDK skips"
    (billed,) = server.billed("ws-cut")
    assert billed["model"] == MODEL and billed["output_tokens"] > 1 and billed["input_tokens"] > 0


def test_a_status_fault_with_a_cut_ends_a_stream_in_an_error_event(server, client):
    server.faults.add({"status": 529, "cut_after_events": 2, "times": 2, "match": "mid-stream-error"})
    stream = client.messages.create(model=MODEL, max_tokens=100, messages=[user("mid-stream-error")], stream=True,
                                    metadata={"user_id": "ws-mid-stream"})
    seen = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in stream:
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start"]
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert len(server.billed("ws-mid-stream")) == 1, "the answer had begun"
    with pytest.raises(anthropic.OverloadedError):  # unstreamed: the error answer itself, not billed
        client.messages.create(model=MODEL, max_tokens=100, messages=[user("mid-stream-error")],
                               metadata={"user_id": "ws-mid-stream"})
    assert len(server.billed("ws-mid-stream")) == 1


def test_the_billing_log_lists_what_was_answered_per_workspace(server, client, http):
    server.clear_billing()
    client.messages.create(model=MODEL, max_tokens=100, messages=[user("bill me")], metadata={"user_id": "ws-a"})
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[user("bill me too")],
                                metadata={"user_id": "ws-b"}) as stream:
        streamed = stream.get_final_message()
    server.faults.add({"status": 529, "match": "not-billed"})
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=100, messages=[user("not-billed")], metadata={"user_id": "ws-a"})
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=100, messages=[], metadata={"user_id": "ws-a"})

    (a,) = server.billed("ws-a")
    assert a["workspace"] == "ws-a" and a["model"] == MODEL
    assert set(a) >= {"id", "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}
    (b,) = server.billed("ws-b")
    assert b["id"] == streamed.id and b["output_tokens"] == streamed.usage.output_tokens
    over_http = http.get(server.base_url + "/_offline/billing", params={"workspace": "ws-b"}).json()
    assert over_http == {"items": [b]}
    assert len(http.get(server.base_url + "/_offline/billing").json()["items"]) == 2
    assert http.delete(server.base_url + "/_offline/billing").json() == {"items": []} and server.billing == []


def test_a_stalled_answer_the_client_gave_up_on_is_billed_when_produced(server):
    server.clear_billing()
    server.faults.add({"stall_seconds": 0.6, "match": "stall-bill-marker"})
    impatient = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0, timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.create(model=MODEL, max_tokens=100, messages=[user("stall-bill-marker")],
                                  metadata={"user_id": "ws-stall"}, stream=True)
    impatient.close()
    deadline = time.monotonic() + 10
    while not server.billed("ws-stall") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.billed("ws-stall")) == 1, "Anthropic bills an answer whose client had gone"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 10, "messages": [user("q")]}, "model: Field required"),
        ({"model": MODEL, "messages": [user("q")]}, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": "ten", "messages": [user("q")]}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 10}, "messages: Field required"),
    ],
)
def test_missing_or_invalid_fields_are_400(http, server: OfflineModelServer, body, expected):
    response = post(http, server, "/v1/messages", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and expected in error["message"]


def test_api_key_and_version_headers_are_required(http, server: OfflineModelServer):
    body = {"model": MODEL, "max_tokens": 10, "messages": [user("q")]}
    no_key = post(http, server, "/v1/messages", body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"

    no_version = post(http, server, "/v1/messages", body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]

    # SDK 2.x sends the API key as a bearer token, which the real API accepts too.
    bearer = post(http, server, "/v1/messages", body, headers={"authorization": "Bearer k", "anthropic-version": "2023-06-01"})
    assert bearer.status_code == 200


# --------------------------------------------------------------- prompt cache


def test_cache_write_then_cache_read_for_the_same_prefix(client: anthropic.Anthropic):
    system = [{"type": "text", "text": "You are the cache test. " * 40 + "cache-marker-1", "cache_control": {"type": "ephemeral"}}]
    request = {"model": MODEL, "max_tokens": 50, "system": system, "messages": [user("hi")]}

    first = client.messages.create(**request).usage
    second = client.messages.create(**request).usage

    assert first.cache_creation_input_tokens > 200 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    total = -(-len(json.dumps({"system": system, "messages": [user("hi")]})) // 4)
    assert first.input_tokens == total - first.cache_creation_input_tokens  # cached tokens are not input tokens
    assert second.input_tokens == first.input_tokens


def test_a_moved_breakpoint_reads_the_earlier_prefix_and_writes_the_rest(client: anthropic.Anthropic):
    question = "cache-marker-2 " + "a long question " * 50
    turn_one = [{"role": "user", "content": [{"type": "text", "text": question, "cache_control": {"type": "ephemeral"}}]}]
    first = client.messages.create(model=MODEL, max_tokens=50, messages=turn_one)

    turn_two = [
        {"role": "user", "content": [{"type": "text", "text": question}]},
        {"role": "assistant", "content": [b.to_dict() for b in first.content]},
        {"role": "user", "content": [{"type": "text", "text": "and then?", "cache_control": {"type": "ephemeral"}}]},
    ]
    second = client.messages.create(model=MODEL, max_tokens=50, messages=turn_two).usage

    assert second.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.cache_creation_input_tokens > 0


# ----------------------------------------------------------------- faults


def test_fault_429_carries_retry_after_and_exhausted_rate_limit_headers(server, client: anthropic.Anthropic):
    server.faults.add(Fault(status=429, retry_after=7, reset_after=30, match="fault-marker-1"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=[user("fault-marker-1")])

    headers = caught.value.response.headers
    assert caught.value.type == "rate_limit_error"
    assert headers["retry-after"] == "7"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "0"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-tokens-reset"])
    assert 25 < reset.timestamp() - datetime.now().timestamp() <= 31
    # consumed: the next identical request succeeds
    after = client.messages.create(model=MODEL, max_tokens=100, messages=[user("fault-marker-1")])
    assert after.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
def test_fault_statuses_use_the_real_error_types(server, client, status, error_class, error_type):
    server.faults.add({"status": status, "match": f"fault-status-{status}"})
    with pytest.raises(error_class) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=[user(f"fault-status-{status}")])
    assert caught.value.status_code == status and caught.value.type == error_type


def test_match_limits_a_fault_to_matching_requests(server: OfflineModelServer, client: anthropic.Anthropic):
    server.faults.add({"status": 529, "times": None, "match": "only-this-run"})

    assert client.messages.create(model=MODEL, max_tokens=100, messages=[user("another run")]).stop_reason == "end_turn"
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(model=MODEL, max_tokens=10, messages=[user("only-this-run")])
    assert server.faults.pending()[0]["times"] is None


def test_faults_over_http(http, server: OfflineModelServer, client: anthropic.Anthropic):
    added = http.post(server.base_url + "/_offline/faults", json=[{"status": 429, "times": 2, "match": "http-fault"}])
    assert added.status_code == 201 and added.json()["faults"][0]["times"] == 2

    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model=MODEL, max_tokens=10, messages=[user("http-fault")])
    assert http.get(server.base_url + "/_offline/faults").json()["faults"][0]["times"] == 1

    assert http.delete(server.base_url + "/_offline/faults").json() == {"faults": []}
    client.messages.create(model=MODEL, max_tokens=10, messages=[user("http-fault")])

    refused = http.post(server.base_url + "/_offline/faults", json={"status": 200})
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"


def test_a_stall_longer_than_the_client_timeout_is_a_timeout(server: OfflineModelServer):
    server.faults.add({"stall_seconds": 1.0, "match": "stall-marker"})
    impatient = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0, timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.create(model=MODEL, max_tokens=10, messages=[user("stall-marker")])
    again = impatient.messages.create(model=MODEL, max_tokens=100, messages=[user("stall-marker")])
    assert again.stop_reason == "end_turn"
    impatient.close()


def test_latency_option_and_standalone_lifecycle(http):
    with OfflineModelServer(latency_seconds=0.05) as slow:
        assert slow.base_url.startswith("http://127.0.0.1:")
        body = {"model": MODEL, "max_tokens": 10, "messages": [user("slow")]}
        response = post(http, slow, "/v1/messages", body)
        assert response.status_code == 200 and response.elapsed.total_seconds() >= 0.05


# ------------------------------------------------------------------ model latency (a call as long as Claude's)


def test_a_pace_splits_a_calls_latency_into_the_wait_for_the_first_token_and_the_streamed_output():
    from local.model_server import Pace

    pace = Pace(latency_seconds=5.0, tokens_per_second=50.0)
    assert pace.streaming_seconds(100) == 2.0
    assert pace.first_token_seconds(100) == 3.0 and pace.whole_seconds(100) == 5.0
    assert Pace(1.0, 10.0).first_token_seconds(50) == 0.0, "a long answer takes longer than the latency"
    assert Pace(1.0, 10.0).whole_seconds(50) == 5.0
    assert Pace(2.0).streaming_seconds(1000) == 0.0 and Pace(2.0).first_token_seconds(1000) == 2.0


def streamed_arrivals(server: OfflineModelServer, text: str, max_tokens: int = 400) -> tuple[float, list, int]:
    """(seconds to the stream's end, [(seconds, event type)], output tokens) of one streamed call, timed from
    the request."""
    sdk = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0, timeout=30)
    started = time.perf_counter()
    arrivals = []
    with sdk.messages.stream(model=MODEL, max_tokens=max_tokens, messages=[user(text)]) as stream:
        for event in stream:
            arrivals.append((time.perf_counter() - started, event.type))
        final = stream.get_final_message()
    sdk.close()
    return time.perf_counter() - started, arrivals, final.usage.output_tokens


def test_the_default_pace_holds_the_first_token_then_streams_the_output_at_its_rate():
    """Lower bounds only (a busy machine makes a call longer, never shorter)."""
    with OfflineModelServer(latency_seconds=0.6, tokens_per_second=200.0) as paced:
        text = "Report. " + "The disk is full on every node of the cluster. " * 8
        total, arrivals, output_tokens = streamed_arrivals(paced, text)
    streaming = output_tokens / 200.0
    deltas = [at for at, kind in arrivals if kind == "content_block_delta"]
    first_event = arrivals[0][0]
    assert len(deltas) >= 2 and streaming > 0.1
    assert first_event >= 0.6 - streaming, "the first event waits for the latency the output does not take"
    assert deltas[-1] - deltas[0] >= streaming * (len(deltas) - 1) / len(deltas) * 0.99, "the output comes at its rate"
    assert total >= 0.6


def test_a_latency_directive_sets_the_pace_of_every_call_of_its_conversation(client, http):
    with OfflineModelServer() as fast:  # no default latency
        body = {"model": MODEL, "max_tokens": 100, "tools": [CLOCK],
                "messages": [user("/latency 0.4\nRead the clock.\n/tool clock {}")]}
        first = post(http, fast, "/v1/messages", body)
        assert first.status_code == 200 and first.elapsed.total_seconds() >= 0.4
        answer = first.json()
        assert answer["stop_reason"] == "tool_use", "the /latency line is not a turn"
        assert [b["name"] for b in answer["content"] if b["type"] == "tool_use"] == ["clock"]
        use = next(b for b in answer["content"] if b["type"] == "tool_use")
        body["messages"] += [{"role": "assistant", "content": answer["content"]},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"],
                                                           "content": "12:00"}]}]
        second = post(http, fast, "/v1/messages", body)
        assert second.status_code == 200 and second.elapsed.total_seconds() >= 0.4
        assert second.json()["content"][0]["text"].startswith("Offline answer: Read the clock."), \
            "nor is it part of the answer's text"
        plain = post(http, fast, "/v1/messages", {"model": MODEL, "max_tokens": 10, "messages": [user("quick")]})
        assert plain.status_code == 200


def test_a_fault_may_only_set_a_calls_pace_and_it_answers_normally(server, client):
    with pytest.raises(ValueError, match="needs a status"):
        Fault.from_dict({"match": "nothing-to-do"})
    with pytest.raises(ValueError, match="latency_seconds must be a non-negative number"):
        Fault.from_dict({"latency_seconds": -1})
    server.faults.add({"latency_seconds": 0.4, "tokens_per_second": 1000, "match": "paced-fault", "times": 1})
    started = time.perf_counter()
    message = client.messages.create(model=MODEL, max_tokens=50, messages=[user("paced-fault")])
    assert time.perf_counter() - started >= 0.4
    assert message.stop_reason == "end_turn" and message.content[0].text == "Offline answer: paced-fault"
    assert server.faults.pending() == [] or all(f.get("match") != "paced-fault" for f in server.faults.pending())
