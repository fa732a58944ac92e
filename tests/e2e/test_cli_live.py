"""`agenthq` as a user runs it against the local cloud (a separate process):
login (token file mode 0600), agents, `runs launch --watch`, `runs watch`
with its exit status and JSON lines, events, cancel, keys."""

from __future__ import annotations

import json
import stat

import pytest

from tests.support import PASSWORD, events_of, signup, wait_for

pytestmark = pytest.mark.slow


def test_login_launch_and_watch_a_run_with_its_exit_status(api, agenthq, tmp_path):
    owner = signup(api, "cli-live", tier="pro")
    done = agenthq("login", "--email", owner.email, "--password", PASSWORD)
    assert done.returncode == 0, done.stderr
    stored = tmp_path / "config" / "agenthq" / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["workspace_id"] == owner.workspace_id

    agent = agenthq("agents", "create", "cli-bot", "--personality", "sre")
    assert agent.returncode == 0, agent.stderr
    agent_id = json.loads(agent.stdout)["id"]
    assert [a["id"] for a in json.loads(agenthq("agents", "list").stdout)] == [agent_id]

    watched = agenthq("runs", "launch", agent_id, "--input", 'Sum.\n/tool calculator {"expression": "2 + 2"}',
                      "--watch", "--json", "--exit-status")
    assert watched.returncode == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert lines[-1]["type"] == "run.succeeded"
    runs = api.get(owner.path("/runs"), headers=owner.headers).json()["items"]
    run_id = runs[0]["id"]
    assert lines == events_of(owner, run_id)

    again = agenthq("runs", "watch", run_id, "--after", "2", "--exit-status")
    assert again.returncode == 0, again.stderr
    assert "run.succeeded" in again.stdout and "run.queued" not in again.stdout
    assert json.loads(agenthq("runs", "events", run_id).stdout) == events_of(owner, run_id)


def test_watch_exits_2_for_a_cancelled_run_and_1_for_a_failed_one(api, agenthq):
    owner = signup(api, "cli-exit", tier="pro")
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0
    agent_id = json.loads(agenthq("agents", "create", "slow", "--personality", "sre").stdout)["id"]
    tools = "\n".join(f'/tool calculator {{"expression": "{n} + 1"}}' for n in range(6))
    run = json.loads(agenthq("runs", "launch", agent_id, "--input", f"Count.\n{tools}").stdout)
    agenthq("runs", "cancel", run["id"])  # it may have ended already (409): the exit status follows the end
    final = wait_for(owner, run["id"])
    watched = agenthq("runs", "watch", run["id"], "--exit-status")
    assert watched.returncode == {"cancelled": 2, "succeeded": 0, "failed": 1}[final["status"]], watched.stdout

    failed = agenthq("runs", "watch", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "--exit-status")
    assert failed.returncode == 1 and "not found" in failed.stderr.lower()


def test_keys_and_an_api_key_watching(api, agenthq):
    owner = signup(api, "cli-keys", tier="pro")
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0
    key = json.loads(agenthq("keys", "create", "ci", "--scope", "runs:read", "--scope", "runs:write",
                             "--scope", "agents:read", "--scope", "agents:write").stdout)
    assert [k["id"] for k in json.loads(agenthq("keys", "list").stdout)] == [key["id"]]
    as_key = {"AGENTHQ_API_KEY": key["key"], "AGENTHQ_WORKSPACE_ID": owner.workspace_id}
    agent_id = json.loads(agenthq("agents", "create", "keyed", "--personality", "sre", **as_key).stdout)["id"]
    watched = agenthq("runs", "launch", agent_id, "--input", "hello", "--watch", "--exit-status", **as_key)
    assert watched.returncode == 0, watched.stderr
    assert "run.succeeded" in watched.stdout
    assert agenthq("keys", "revoke", key["id"]).returncode == 0
    refused = agenthq("agents", "list", **as_key)
    assert refused.returncode == 1 and "401" in refused.stderr


def test_usage_shows_each_limit_of_the_tier_and_what_runs_used(api, agenthq):
    owner = signup(api, "cli-usage")  # the free tier
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0
    agent_id = json.loads(agenthq("agents", "create", "counted", "--personality", "sre").stdout)["id"]
    assert agenthq("runs", "launch", agent_id, "--input", "hello", "--watch", "--exit-status").returncode == 0
    shown = agenthq("usage")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("free tier, month")
    assert "runs_per_day" in shown.stdout and "1 of 50" in shown.stdout
    as_json = json.loads(agenthq("usage", "--json").stdout)
    assert as_json["usage"]["runs"] == 1 and as_json["limits"]["budget_usd_per_month"]["limit"] == "1.000000"
    assert f"${as_json['usage']['model_cost_usd']}" in shown.stdout


def test_agents_versions_lists_newest_first_and_rollback_makes_an_equal_new_version(api, agenthq):
    owner = signup(api, "cli-versions", tier="pro")
    assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0
    agent_id = json.loads(agenthq("agents", "create", "versioned", "--personality", "sre").stdout)["id"]
    for body in ({"system_prompt": "Be terse."}, {"tools": ["calculator"]}):
        changed = api.patch(owner.path(f"/agents/{agent_id}"), headers=owner.headers, json=body)
        assert changed.status_code == 200, changed.text

    listed = agenthq("agents", "versions", agent_id, "--json")
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)
    assert [v["version"] for v in versions] == [3, 2, 1]
    table = agenthq("agents", "versions", agent_id).stdout.splitlines()
    assert [line.split()[0] for line in table] == ["v3", "v2", "v1"]
    assert "personality prompt" in table[2] and "own prompt" in table[0]

    rolled = agenthq("agents", "rollback", agent_id, "1")
    assert rolled.returncode == 0, rolled.stderr
    assert "now version 4, equal to version 1" in rolled.stdout
    agent = api.get(owner.path(f"/agents/{agent_id}"), headers=owner.headers).json()
    assert agent["version"] == 4 and agent["system_prompt"] == versions[2]["definition"]["system_prompt"]
    assert agent["tools"] == versions[2]["definition"]["tools"]
    again = agenthq("agents", "rollback", agent_id, "1")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert json.loads(agenthq("agents", "versions", agent_id, "--json").stdout)[0]["change"] == "rollback"

    missing = agenthq("agents", "rollback", agent_id, "9")
    assert missing.returncode == 1 and "(404 not_found)" in missing.stderr, missing.stderr
    zero = agenthq("agents", "rollback", agent_id, "0")
    assert zero.returncode == 2  # refused by the command line, nothing sent
