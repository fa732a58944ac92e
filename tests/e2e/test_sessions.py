"""Sessions end to end on the local cloud (DESIGN §9, issue 20): a conversation
with one agent across runs, each message a run launched through the same path
as any run, one at a time in the order the launches committed."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from local.lambda_runtime import InvocationFault
from tests.support import Tenant, assert_error, create_agent, events_of, signup, wait_for

pytestmark = pytest.mark.slow


def new_session(tenant: Tenant, agent_id: str, **body: Any) -> dict[str, Any]:
    response = tenant.post(f"/agents/{agent_id}/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def send(tenant: Tenant, session_id: str, text: str, key: str | None = None, **body: Any) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return tenant.post(f"/sessions/{session_id}/messages", json={"input": text, **body}, headers=headers)


def transcript(tenant: Tenant, session_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = tenant.get(f"/sessions/{session_id}/messages", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            return items


def prompts_with(cloud: Any, marker: str) -> list[dict[str, Any]]:
    """The model calls whose latest message came from this test (the offline server's request log)."""
    return [body for body in cloud.model_server.requests if marker in json.dumps(body["messages"][-1])]


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


def test_a_two_turn_session_carries_the_first_turn_into_the_second_runs_prompt(cloud, api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "ops-bot", "sre")
    session = new_session(tenant, agent["id"], title="Rollout")
    assert session["status"] == "idle" and session["turns"] == 0 and session["agent_version"] == "1"

    first = send(tenant, session["id"], 'Count prod hosts t2-one\n/tool calculator {"expression": "3 * 4"}', key="t-1")
    assert first.status_code == 202, first.text
    assert first.json()["session_id"] == session["id"]
    one = wait_for(tenant, first.json()["id"])
    assert one["status"] == "succeeded" and "calculator: 12" in one["output"]

    second = send(tenant, session["id"], "And now do the same for staging t2-two")
    assert second.status_code == 202, second.text
    two = wait_for(tenant, second.json()["id"])
    assert two["status"] == "succeeded"
    assert two["output"] == "Offline answer: And now do the same for staging t2-two"

    [received] = prompts_with(cloud, "t2-two")
    messages = received["messages"]
    # the first turn whole: its input, the tool call, its result, its answer; then the second input
    assert messages[0]["content"][0]["text"].startswith("Count prod hosts t2-one")
    assert messages[1]["content"][0]["type"] == "tool_use" and messages[1]["content"][0]["name"] == "calculator"
    assert messages[2]["content"][0]["type"] == "tool_result" and "12" in json.dumps(messages[2]["content"][0])
    assert messages[3] == {"role": "assistant", "content": [{"type": "text", "text": one["output"]}]}
    assert messages[4]["role"] == "user" and "t2-two" in messages[4]["content"][0]["text"]
    assert len(messages) == 5

    entries = transcript(tenant, session["id"])
    assert [(e["role"], e["run_id"]) for e in entries] == [
        ("user", one["id"]), ("assistant", one["id"]), ("user", two["id"]), ("assistant", two["id"])]
    assert [e["text"] for e in entries] == [one["input"], one["output"], two["input"], two["output"]]

    shown = tenant.get(f"/sessions/{session['id']}").json()
    assert shown["status"] == "idle" and shown["turns"] == 2 and shown["last_run_id"] == two["id"]
    assert shown["usage"]["runs"] == 2
    assert Decimal(shown["usage"]["cost_usd"]) == Decimal(one["usage"]["cost_usd"]) + Decimal(two["usage"]["cost_usd"])
    assert shown["usage"]["input_tokens"] == one["usage"]["input_tokens"] + two["usage"]["input_tokens"]


def test_a_busy_session_rejects_or_enqueues_and_the_queued_turn_starts_after_the_busy_one_ends(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "slow-bot", "sre")
    session = new_session(tenant, agent["id"])
    busy = send(tenant, session["id"], "Think slowly\n/latency 2")
    assert busy.status_code == 202, busy.text

    assert tenant.get(f"/sessions/{session['id']}").json()["status"] == "running"
    refused = send(tenant, session["id"], "Are you done?", on_busy="reject")
    assert_error(refused, 409, "session_busy")

    queued = send(tenant, session["id"], "Then this", on_busy="enqueue")
    assert queued.status_code == 202, queued.text
    first = wait_for(tenant, busy.json()["id"])
    second = wait_for(tenant, queued.json()["id"])
    assert first["status"] == second["status"] == "succeeded"

    first_end = [e for e in events_of(tenant, first["id"]) if e["type"] == "run.succeeded"][0]
    second_start = [e for e in events_of(tenant, second["id"]) if e["type"] == "run.started"][0]
    assert at(second_start) >= at(first_end), "the queued turn started only after the busy one ended"
    assert len(transcript(tenant, session["id"])) == 4, "the refused message is no turn"


def test_twenty_parallel_messages_run_one_at_a_time_in_the_order_their_launches_committed(cloud, api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "queue-bot", "sre")
    session = new_session(tenant, agent["id"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda n: send(tenant, session["id"], f"message {n}", key=f"p-{n}"), range(20)))
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers if a.status_code != 202]
    run_ids = {a.json()["id"] for a in answers}
    assert len(run_ids) == 20

    runs = [wait_for(tenant, run_id, timeout=180) for run_id in run_ids]
    assert all(r["status"] == "succeeded" for r in runs)
    # The order the launches committed is the transcript's (each turn numbered in its launch's transaction).
    entries = transcript(tenant, session["id"])
    assert len(entries) == 40
    order = [e["run_id"] for e in entries if e["role"] == "user"]
    assert len(set(order)) == 20
    by_id = {r["id"]: r for r in runs}
    spans = [(datetime.fromisoformat(by_id[rid]["started_at"]), datetime.fromisoformat(by_id[rid]["finished_at"]))
             for rid in order]
    for (_, earlier_end), (later_start, _) in zip(spans, spans[1:], strict=False):
        assert later_start >= earlier_end, "one at a time, in the order the launches committed"
    # each turn's prompt carried every turn before it, in that order
    for index, rid in enumerate(order):
        assert by_id[rid]["session_id"] == session["id"]
        [prompt] = [body["messages"] for body in cloud.model_server.requests
                    if body.get("metadata", {}).get("user_id") == tenant.workspace_id
                    and body["messages"][-1]["content"][0].get("text") == by_id[rid]["input"]]
        assert len(prompt) == 2 * index + 1
        assert [m["content"][0]["text"] for m in prompt[::2]] == [by_id[r]["input"] for r in order[:index + 1]]
    shown = tenant.get(f"/sessions/{session['id']}").json()
    assert shown["turns"] == 20 and shown["status"] == "idle" and shown["usage"]["runs"] == 20
    # the session's cursor: every event of the 20 runs once, dense, turn after turn
    events = session_events(tenant, session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    of_runs = [e for e in events if e["type"] != "session.idle"]
    assert len(of_runs) == sum(len(events_of(tenant, rid)) for rid in order)
    # idle once the last turn launched is done (between turns too, when the next launch came after it)
    assert events[-1]["type"] == "session.idle" and events[-1]["run_id"] == order[-1]
    assert all(e["run_seq"] is None and e["data"]["status"] == "idle" for e in events if e not in of_runs)


def test_sessions_list_rename_delete_and_validate(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "list-bot", "sre")
    other = create_agent(tenant, "other-bot", "architect")
    first = new_session(tenant, agent["id"], title="First")
    second = new_session(tenant, other["id"], agent_version="latest")
    assert second["agent_version"] == "latest" and second["title"] is None

    listed = tenant.get("/sessions").json()["items"]
    assert [s["id"] for s in listed] == [second["id"], first["id"]]
    only = tenant.get("/sessions", params={"agent_id": agent["id"]}).json()["items"]
    assert [s["id"] for s in only] == [first["id"]]

    renamed = tenant.api.patch(tenant.path(f"/sessions/{first['id']}"), json={"title": "Renamed"},
                               headers=tenant.headers)
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"

    assert_error(tenant.post(f"/agents/{agent['id']}/sessions", json={"agent_version": 7}), 400, "invalid_request")
    assert_error(tenant.post(f"/agents/{agent['id']}/sessions", json={"title": " "}), 400, "invalid_request")
    assert_error(tenant.post(f"/agents/{'0' * 26}/sessions", json={}), 404)
    assert_error(send(tenant, first["id"], "hi", on_busy="later"), 400, "invalid_request")
    assert_error(send(tenant, "0" * 26, "hi"), 404)

    run = wait_for(tenant, send(tenant, first["id"], "hello there").json()["id"])
    deleted = tenant.api.delete(tenant.path(f"/sessions/{first['id']}"), headers=tenant.headers)
    assert deleted.status_code == 204
    assert_error(tenant.get(f"/sessions/{first['id']}"), 404)
    assert_error(tenant.get(f"/sessions/{first['id']}/messages"), 404)
    assert tenant.get(f"/runs/{run['id']}").json()["session_id"] == first["id"], "its runs stay"


def session_events(tenant: Tenant, session_id: str, after: int = 0) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = tenant.get(f"/sessions/{session_id}/events", params={"after": after, "limit": 7})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        if response.json()["next_after"] is None:
            return items
        after = response.json()["next_after"]


def test_the_session_cursor_is_dense_over_two_runs_and_a_delegated_child(api):
    tenant = signup(api, tier="pro")
    lead = create_agent(tenant, "lead", "coordinator")
    helper = create_agent(tenant, "helper", "sre")
    session = new_session(tenant, lead["id"])
    child_task = 'Add them up.\n/tool calculator {"expression": "2 + 3"}'
    first = wait_for(tenant, send(tenant, session["id"], "Ask the helper.\n/tool delegate "
                                  + json.dumps({"agent": "helper", "input": child_task})).json()["id"])
    second = wait_for(tenant, send(tenant, session["id"], "Thanks, that is all.").json()["id"])
    assert first["status"] == second["status"] == "succeeded"
    [child] = tenant.get("/runs", params={"agent_id": helper["id"]}).json()["items"]
    assert child["parent_run_id"] == first["id"] and child["session_id"] == session["id"]

    events = session_events(tenant, session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "dense and gapless from 1"
    for run in (first, child, second):  # every event of each run, exactly once, in its run's order
        own = [(e["run_seq"], e["type"]) for e in events if e["run_id"] == run["id"] and e["type"] != "session.idle"]
        assert own == [(e["seq"], e["type"]) for e in events_of(tenant, run["id"])]
    assert {e["run_id"] for e in events} == {first["id"], child["id"], second["id"]}
    # idle after each turn (the second was sent after the first ended): the session's own event, last of its turn
    idle = [e for e in events if e["type"] == "session.idle"]
    assert [(e["run_id"], e["run_seq"]) for e in idle] == [(first["id"], None), (second["id"], None)]
    assert events[-1] == idle[-1]
    first_turn = [e["seq"] for e in events if e["run_id"] in (first["id"], child["id"])]
    assert idle[0]["seq"] == first_turn[-1]
    assert first_turn == list(range(1, len(first_turn) + 1)), "the second turn's events come after the first's"
    assert session_events(tenant, session["id"], after=len(events) - 2) == events[-2:]
    assert session_events(tenant, session["id"], after=len(events)) == []
    assert_error(tenant.get(f"/sessions/{session['id']}/events", params={"after": -1}), 400)


def prompt_tokens(body: dict[str, Any]) -> int:
    """A request's prompt as the context budget counts it (agenthq.runs.turns.prompt_tokens)."""
    return -(-len(json.dumps({"system": body.get("system"), "messages": body["messages"],
                              "tools": body.get("tools")})) // 4)


def test_a_turn_past_the_context_budget_compacts_once_metered_and_the_next_turns_fit(cloud, api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "long-talker", "sre")
    session = new_session(tenant, agent["id"], agent_version="latest")

    def turn(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
        run = wait_for(tenant, send(tenant, session["id"], text).json()["id"])
        assert run["status"] == "succeeded", run
        [body] = [b for b in cloud.model_server.requests if b.get("metadata", {}).get("user_id") == tenant.workspace_id
                  and b["messages"][-1]["content"][0].get("text") == text]
        return run, body

    pad = "lorem ipsum dolor sit amet " * 60  # about 400 tokens a turn, echoed in its answer
    turn(f"c1 first topic: {pad}")
    _, second = turn(f"c2 second topic: {pad}")
    budget = prompt_tokens(second) + 100  # the third turn's prompt (the second's answer on top) passes it
    changed = tenant.api.patch(tenant.path(f"/agents/{agent['id']}"), json={"context_budget_tokens": budget},
                               headers=tenant.headers)
    assert changed.status_code == 200 and changed.json()["context_budget_tokens"] == budget

    third, third_body = turn("c3 where were we?")
    fourth, fourth_body = turn("c4 and then?")
    assert prompt_tokens(third_body) <= budget and prompt_tokens(fourth_body) <= budget, "within the budget"

    events = events_of(tenant, third["id"])
    [compacted] = [e for e in events if e["type"] == "session.compacted"]
    assert compacted["data"]["turns"] == [1, 2] and compacted["data"]["through_turn"] == 2
    assert not [e for e in events_of(tenant, fourth["id"]) if e["type"] == "session.compacted"], "once"
    # metered like any model call: the run's cost is its think's plus the summary's
    [called] = [e for e in events if e["type"] == "model.called"]
    assert float(compacted["data"]["cost_usd"]) > 0
    assert Decimal(third["usage"]["cost_usd"]) == Decimal(called["data"]["cost_usd"]) + \
        Decimal(compacted["data"]["cost_usd"])
    assert third["usage"]["output_tokens"] == called["data"]["usage"]["output_tokens"] + \
        compacted["data"]["usage"]["output_tokens"]
    # the summary call saw the turns it replaced; the next prompts begin with the summary, not those turns
    [summarised] = [b for b in cloud.model_server.requests if "c1 first topic" in json.dumps(b["messages"])
                    and "summarise" in json.dumps(b.get("system", "")).lower()]
    assert "c2 second topic" in json.dumps(summarised["messages"])
    for body in (third_body, fourth_body):
        assert "c1 first topic" not in json.dumps(body["messages"])
        assert body["messages"][0]["content"][0]["text"].startswith("The conversation so far, summarised")
    assert "c3 where were we?" in json.dumps(fourth_body["messages"]), "the turn after the summary stays whole"
    # the transcript keeps every original turn
    entries = transcript(tenant, session["id"])
    assert len(entries) == 8 and entries[0]["text"] == f"c1 first topic: {pad}"


def test_a_session_keeps_the_agent_version_it_began_with_unless_latest(cloud, api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "versioned", "sre", system_prompt="You are version one.")

    def patch(**change: Any) -> dict[str, Any]:
        changed = tenant.api.patch(tenant.path(f"/agents/{agent['id']}"), json=change, headers=tenant.headers)
        assert changed.status_code == 200, changed.text
        return changed.json()

    pinned = new_session(tenant, agent["id"])
    assert pinned["agent_version"] == "1"
    patch(system_prompt="You are version two.")
    assert patch(system_prompt="You are version three.")["version"] == 3
    second = new_session(tenant, agent["id"], agent_version=2)
    latest = new_session(tenant, agent["id"], agent_version="latest")
    assert (second["agent_version"], latest["agent_version"]) == ("2", "latest")

    def system_of(session: dict[str, Any], marker: str) -> tuple[dict[str, Any], str]:
        run = wait_for(tenant, send(tenant, session["id"], marker).json()["id"])
        [body] = [b for b in cloud.model_server.requests if marker in json.dumps(b["messages"][-1])]
        return run, " ".join(block["text"] for block in body["system"])

    for session, version in ((pinned, 1), (second, 2), (latest, 3)):
        run, system = system_of(session, f"which version? {session['id']}")
        assert run["agent_version"] == version and f"You are version {['one', 'two', 'three'][version - 1]}." in system
    rolled = tenant.post(f"/agents/{agent['id']}/rollback", json={"version": 1})
    assert rolled.status_code == 200, rolled.text
    run, system = system_of(pinned, "and after the rollback?")
    assert run["agent_version"] == 1 and "You are version one." in system, "the pinned session keeps version 1"
    run, system = system_of(latest, "and latest after the rollback?")
    assert run["agent_version"] == 4 and "You are version one." in system


def test_a_turn_cancelled_while_it_waits_ends_at_once_and_the_next_turn_still_waits_for_the_busy_one(api):
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "patient", "sre")
    session = new_session(tenant, agent["id"])
    busy = send(tenant, session["id"], "Take your time\n/latency 2").json()
    waiting = send(tenant, session["id"], "Never mind this one").json()
    after = send(tenant, session["id"], "But this one").json()

    cancelled = tenant.post(f"/runs/{waiting['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert wait_for(tenant, waiting["id"], timeout=10)["status"] == "cancelled"
    assert tenant.get(f"/runs/{after['id']}").json()["status"] == "queued", "still behind the busy turn"

    first, third = wait_for(tenant, busy["id"]), wait_for(tenant, after["id"])
    assert first["status"] == third["status"] == "succeeded"
    assert datetime.fromisoformat(third["started_at"]) >= datetime.fromisoformat(first["finished_at"])
    assert third["output"] == "Offline answer: But this one"
    entries = transcript(tenant, session["id"])
    assert [(e["role"], e["run_id"]) for e in entries] == [
        ("user", busy["id"]), ("assistant", busy["id"]), ("user", waiting["id"]), ("assistant", waiting["id"]),
        ("user", after["id"]), ("assistant", after["id"])]
    assert entries[3]["text"].startswith("(The run ended cancelled")
    shown = tenant.get(f"/sessions/{session['id']}").json()
    assert shown["status"] == "idle" and shown["turns"] == 3 and shown["last_run_id"] == after["id"]


def test_a_turn_that_fails_while_its_delegated_run_works_is_done_only_when_that_run_has_ended(cloud, api):
    """A parent that ends while it waits for its child (here every attempt of its delegate step fails after
    starting the child, so it ends failed; in the fuzzer, its 24-hour wait timed out) cancels the child,
    which ends after it (its model call in flight finishes first): the turn is done, the session idle and
    the next turn started only once the whole tree has ended (the invariant fuzzer found `session.idle`
    written before the child's end, and the next turn could start beside the child)."""
    tenant = signup(api, tier="pro")
    lead = create_agent(tenant, "lead", "coordinator")
    helper = create_agent(tenant, "helper", "sre")
    session = new_session(tenant, lead["id"])
    slow = "slow-child-" + tenant.workspace_id
    cloud.model_server.faults.add({"stall_seconds": 8, "times": 1, "match": slow})  # the child's first call
    broken = InvocationFault(function="RunStepsFunction", when="after", times=4,  # the first try and 3 retries
                             match=lambda e: e.get("step") == "delegate" and e.get("workspace_id") == tenant.workspace_id)
    cloud.runtime.faults.append(broken)
    try:
        # (the marker escaped in the parent's text, so that only the child's own call matches it)
        first = send(tenant, session["id"], "Ask the helper.\n/tool delegate "
                     + json.dumps({"agent": "helper", "input": f"{slow}: add them up."}).replace(
                         "slow-child", "slow\\u002dchild")).json()
        second = send(tenant, session["id"], "Never mind.").json()
        ended_first = wait_for(tenant, first["id"])
        [child] = tenant.get("/runs", params={"agent_id": helper["id"]}).json()["items"]
        ended_child = wait_for(tenant, child["id"])
        ended_second = wait_for(tenant, second["id"])
    finally:
        cloud.runtime.faults.remove(broken)
        cloud.model_server.faults.clear()
    assert (ended_first["status"], ended_second["status"]) == ("failed", "succeeded"), ended_first
    assert ended_child["status"] in ("cancelled", "succeeded")  # asked to stop, it may finish its last step first
    assert ended_child["finished_at"] > ended_first["finished_at"], "the child ended after its parent"
    assert ended_second["started_at"] >= ended_child["finished_at"], "the next turn waited for the whole tree"
    events = session_events(tenant, session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    child_end = next(e["seq"] for e in events
                     if e["run_id"] == child["id"] and e["type"] == f"run.{ended_child['status']}")
    idle = [e["seq"] for e in events if e["type"] == "session.idle"]
    assert idle and all(seq > child_end for seq in idle), ("idle only after the child's end",
                                                           [(e["seq"], e["type"], e["run_id"]) for e in events])
