"""`agenthq sessions` as a user runs it against the local cloud (a separate process): new, send
(waits and prints the answer; --watch streams the turn's events), watch (the session's one cursor),
list."""

from __future__ import annotations

import json

import pytest

from tests.support import PASSWORD, session_events_of, signup

pytestmark = pytest.mark.slow


def test_new_send_watch_and_list_a_session(api, agenthq):
    owner = signup(api, "cli-sessions", tier="pro")
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0
    agent_id = json.loads(agenthq("agents", "create", "chat-bot", "--personality", "sre").stdout)["id"]

    created = agenthq("sessions", "new", agent_id, "--title", "Rollout")
    assert created.returncode == 0, created.stderr
    session = json.loads(created.stdout)
    assert session["title"] == "Rollout" and session["status"] == "idle"

    first = agenthq("sessions", "send", session["id"], "--input", "How many hosts in prod?")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "Offline answer: How many hosts in prod?"

    second = agenthq("sessions", "send", session["id"], "--input",
                     'And staging?\n/tool calculator {"expression": "2 * 3"}', "--watch")
    assert second.returncode == 0, second.stderr
    lines = second.stdout.strip().splitlines()
    assert lines[-1] == "calculator: 6" and "Offline answer: And staging?" in second.stdout
    assert any("run.started" in line for line in lines) and any("tool.result" in line for line in lines)

    watched = agenthq("sessions", "watch", session["id"], "--json", "--until-idle")
    assert watched.returncode == 0, watched.stderr
    shown = [json.loads(line) for line in watched.stdout.splitlines()]
    stored = session_events_of(owner, session["id"])
    assert shown == stored, "every event of both turns, each once, in the session's order"
    assert [e["seq"] for e in shown] == list(range(1, len(shown) + 1))

    later = agenthq("sessions", "watch", session["id"], "--json", "--until-idle", "--after", str(len(stored) - 3))
    assert [json.loads(line)["seq"] for line in later.stdout.splitlines()] == [len(stored) - 2, len(stored) - 1,
                                                                               len(stored)]

    listed = agenthq("sessions", "list", "--json")
    assert [(s["id"], s["turns"], s["status"]) for s in json.loads(listed.stdout)] == [(session["id"], 2, "idle")]
    assert session["id"] in agenthq("sessions", "list").stdout

    refused = agenthq("sessions", "send", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "--input", "hello?")
    assert refused.returncode != 0 and "session" in refused.stderr.lower()
