"""Sizes in bytes as DynamoDB counts them (issue 17, hole 7): non-ASCII text is
stored as UTF-8, what cannot fit one item is refused with a 413 before anything
is written, and a run whose first message cannot hold its agent's whole inbox
leaves the rest undelivered instead of losing it."""

from __future__ import annotations

import json
import time

import pytest
from pynamodb.exceptions import PutError

from agenthq import ids, messaging
from agenthq.context import ROLE_SCOPES, Principal, PrincipalKind, Role
from agenthq.errors import PayloadTooLarge
from agenthq.runs.api import RunLaunchRequest, launch_run
from agenthq.runs.transcript import RESULTS_CUT
from agenthq.services import get_services
from agenthq.store import tenant_scope
from agenthq.store.items import AgentMessage, ConversationMessage, Note, Run, RunEvent, ToolCall
from agenthq.store.sizes import MAX_ITEM_BYTES, Utf8JSONAttribute, item_bytes
from tests.support import Tenant, create_agent, signup, wait_for, workspace_leftovers

MODEL = "claude-haiku-5-5"  # the cheapest: inputs of a few hundred thousand bytes stay within the pro month


@pytest.fixture()
def tenant(api) -> Tenant:
    owner = signup(api, tag="sizes", tier="pro")
    time.sleep(1.1)  # the gateway sees the pro plan
    return owner


def launch_utf8(tenant: Tenant, agent_id: str, text: str):
    """A launch whose body is sent as UTF-8 (as browsers and most clients do), not as \\u escapes."""
    body = json.dumps({"input": text}, ensure_ascii=False).encode()
    return tenant.api.post(tenant.path(f"/agents/{agent_id}/runs"), content=body,
                           headers={**tenant.headers, "Content-Type": "application/json"})


def first_message(tenant: Tenant, run_id: str) -> str:
    with tenant_scope(tenant.workspace_id):
        message = ConversationMessage.get(*ConversationMessage.key(tenant.workspace_id, run_id, 1),
                                          consistent_read=True)
    return str(message.content[0]["text"])


def send(tenant: Tenant, from_agent: str, to_agent: str, body: str) -> AgentMessage:
    return messaging.send_message(get_services(), tenant.workspace_id, from_agent, ids.new_id(), to_agent, body,
                                  ids.new_id())


def inbox_of(tenant: Tenant, agent_id: str) -> dict[str, AgentMessage]:
    with tenant_scope(tenant.workspace_id):
        return {m.id: m for m in AgentMessage.gsi1.query(AgentMessage.inbox(tenant.workspace_id, agent_id))}


def test_an_agent_with_a_long_emoji_system_prompt_launches(tenant):
    """On main: 20,000 emoji (a 240 KB escaped snapshot) and an input of 100,000 'é' made the launch a 500."""
    agent = create_agent(tenant, "emoji", "sre", model=MODEL, budget_usd="50", system_prompt="😀" * 20_000)
    text = "é" * 100_000
    launched = launch_utf8(tenant, agent["id"], text)
    assert launched.status_code == 202, launched.text
    run = wait_for(tenant, launched.json()["id"])
    assert run["status"] == "succeeded", run
    assert tenant.get(f"/runs/{run['id']}").json()["input"] == text
    assert tenant.get(f"/agents/{agent['id']}").json()["system_prompt"] == "😀" * 20_000


def test_a_long_non_ascii_input_runs_and_its_inbox_is_delivered(tenant):
    """On main: 68,500 'é' were accepted (202), then the first message (408 KB escaped) failed the run
    with internal_error after the agent's inbox had been marked delivered to it."""
    sender = create_agent(tenant, "sender", "sre", model=MODEL)
    receiver = create_agent(tenant, "receiver", "sre", model=MODEL, budget_usd="50")
    sent = [send(tenant, sender["id"], receiver["id"], f"note {n}: déjà vu") for n in range(3)]
    launched = launch_utf8(tenant, receiver["id"], "é" * 68_500)
    assert launched.status_code == 202, launched.text
    run = wait_for(tenant, launched.json()["id"])
    assert run["status"] == "succeeded", run
    inbox = inbox_of(tenant, receiver["id"])
    assert {inbox[m.id].delivered_run_id for m in sent} == {run["id"]}
    opening = first_message(tenant, run["id"])
    assert opening.startswith("é" * 68_500)
    assert all(f"note {n}: déjà vu" in opening for n in range(3))


def test_inbox_messages_that_do_not_fit_the_first_message_wait_for_the_next_run(tenant):
    """An input of 260,000 bytes leaves room for some of 20 long messages: those are delivered and shown,
    the rest stay undelivered (in order) and the agent's next run gets them. On main the run failed
    (internal_error) with all 20 marked delivered to it: lost."""
    sender = create_agent(tenant, "sender", "sre", model=MODEL)
    receiver = create_agent(tenant, "receiver", "sre", model=MODEL, budget_usd="50")
    sent = [send(tenant, sender["id"], receiver["id"], f"{n:02d}" + "🚀" * 2_500) for n in range(20)]
    launched = launch_utf8(tenant, receiver["id"], "😀" * 65_000)
    assert launched.status_code == 202, launched.text
    first = wait_for(tenant, launched.json()["id"])
    assert first["status"] == "succeeded", first

    inbox = inbox_of(tenant, receiver["id"])
    delivered = [m for m in sent if inbox[m.id].delivered_run_id == first["id"]]
    waiting = [m for m in sent if inbox[m.id].delivered_run_id is None]
    assert delivered and waiting and len(delivered) + len(waiting) == 20
    order = [m.id for m in sorted(sent, key=lambda m: (m.created_at, m.id))]
    assert [m.id for m in delivered] + [m.id for m in waiting] == order  # the oldest first; the rest wait
    opening = first_message(tenant, first["id"])
    assert all(f"from agent {sender['id']}: {m.body[:2]}" in opening for m in delivered)
    assert not any(f"from agent {sender['id']}: {m.body[:2]}" in opening for m in waiting)

    later = tenant.post(f"/agents/{receiver['id']}/runs", json={"input": "Anything new?"})
    assert later.status_code == 202, later.text
    second = wait_for(tenant, later.json()["id"])
    assert second["status"] == "succeeded", second
    inbox = inbox_of(tenant, receiver["id"])
    assert {inbox[m.id].delivered_run_id for m in waiting} == {second["id"]}


def test_a_launch_that_cannot_be_stored_is_a_413_and_writes_nothing(cloud, tenant):
    """The input with the agent's snapshot over 400 KB (in-process: the gateway's 256 KiB body limit stops
    such a request first with today's settings). On main DynamoDB refused the transaction: a 500."""
    agent = create_agent(tenant, "big", "sre", model=MODEL, system_prompt="😀" * 20_000)
    principal = Principal(workspace_id=tenant.workspace_id, subject=tenant.user_id, kind=PrincipalKind.user,
                          role=Role.owner, scopes=ROLE_SCOPES[Role.owner])
    before = workspace_leftovers(cloud, tenant.workspace_id)
    with pytest.raises(PayloadTooLarge) as refused:
        launch_run(get_services(), principal, agent["id"], RunLaunchRequest(input="😀" * 90_000), "size-key-1")
    assert refused.value.status == 413 and refused.value.details[0]["field"] == "input"
    assert workspace_leftovers(cloud, tenant.workspace_id) == before  # no run, body, event, launch record or quota count
    runs = tenant.get("/runs", params={"agent_id": agent["id"]}).json()
    assert runs["items"] == []


def test_a_turn_reading_a_large_note_many_times_keeps_running(tenant):
    """Eight parallel reads of a 64 KB note (16,000 emoji) are 512 KB of tool results: on main the act
    step's reply could not be stored and the run failed (internal_error). Now the results are cut to
    fit together, each saying so, and each tool call keeps its whole result."""
    agent = create_agent(tenant, "reader", "sre", model=MODEL, budget_usd="50", tools=["notes_read"])
    note = "😀" * 16_000  # the most notes_write takes; stored here (one model turn could not write it all)
    with tenant_scope(tenant.workspace_id):
        Note(*Note.key(tenant.workspace_id, "big"), name="big", content=note, updated_at=get_services().now()).save()
    reads = json.dumps([{"name": "notes_read", "input": {"name": "big"}}] * 8)
    text = f"/tools {reads}\n/stop max_tokens"
    launched = launch_utf8(tenant, agent["id"], text)
    assert launched.status_code == 202, launched.text
    run = wait_for(tenant, launched.json()["id"])
    assert run["status"] == "succeeded", run
    with tenant_scope(tenant.workspace_id):
        conversation = list(ConversationMessage.query(Run.partition(tenant.workspace_id, run["id"]),
                                                      consistent_read=True))
        calls = list(ToolCall.query(Run.partition(tenant.workspace_id, run["id"]), ToolCall.sk.startswith("TOOL#"),
                                    consistent_read=True))
    replies = [m for m in conversation if m.role == "user" and m.content[0].get("type") == "tool_result"]
    read_reply = replies[-1].content
    assert len(read_reply) == 8
    assert all(block["content"].endswith(RESULTS_CUT) and note[:1000] in block["content"] for block in read_reply)
    assert all(item_bytes(m) <= MAX_ITEM_BYTES for m in conversation)
    whole = [c for c in calls if c.name == "notes_read"]
    assert len(whole) == 8 and all(note in c.result["content"] and not c.result["is_error"] for c in whole)


def test_item_bytes_is_what_dynamodb_counts(cloud, tenant):
    """An item item_bytes puts at exactly 400 KB is stored; one byte more is refused by DynamoDB itself."""
    with tenant_scope(tenant.workspace_id):
        note = Note(*Note.key(tenant.workspace_id, "edge"), name="edge", content="", updated_at=get_services().now())
        base = item_bytes(note)
        note.content = "é" * ((MAX_ITEM_BYTES - base) // 2) + "x" * ((MAX_ITEM_BYTES - base) % 2)
        assert item_bytes(note) == MAX_ITEM_BYTES
        note.save()
        assert Note.get(*Note.key(tenant.workspace_id, "edge"), consistent_read=True).content == note.content
        note.content += "x"
        with pytest.raises(PutError, match="size"):
            note.save()


def test_json_written_with_escapes_reads_back_and_new_json_is_utf8(tenant):
    """Items written before (\\u escapes) read the same; new ones store UTF-8 (é in 2 bytes, not 6)."""
    data = {"text": "déjà vu 😀", "n": 1}
    key = RunEvent.key(tenant.workspace_id, ids.new_id(), 1)
    with tenant_scope(tenant.workspace_id):
        RunEvent._get_connection().put_item(*key, attributes={
            "type": {"S": "RunEvent"}, "seq": {"N": "1"}, "event_type": {"S": "run.queued"},
            "at": {"S": "2026-12-07T00:00:00.000000+0000"}, "data": {"S": json.dumps(data)}})
        old = RunEvent.get(*key, consistent_read=True)
        assert old.data == data
        old.save()
        raw = RunEvent._get_connection().get_item(*key, consistent_read=True)["Item"]["data"]["S"]
    assert raw == json.dumps(data, ensure_ascii=False)
    assert Utf8JSONAttribute().serialize({"x": "\ud800"}) == '{"x": "\\ud800"}'  # a lone surrogate stays escaped
