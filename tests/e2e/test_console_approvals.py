"""The console's approvals page in a real browser (headless Chromium, as test_console_browser.py):
a run's tool call that asks appears live (over the workspace's WebSocket subscription, no reload),
Approve lets it run, Deny with a reason gives the model that reason, and a decision made elsewhere
(the API, as another person or the CLI would) leaves the page without a reload."""

from __future__ import annotations

import json

import pytest

from tests.support import (
    PASSWORD,
    ConsolePage,
    LiveClient,
    create_agent,
    events_of,
    launch,
    signup,
    wait_for,
)

pytestmark = pytest.mark.slow


def shown(page: ConsolePage) -> dict[str, str]:
    """The approvals the page lists: approval id → tool."""
    return {card.get_attribute("data-approval"): card.get_attribute("data-tool")
            for card in page.all("#approvals-list .approval")}


def test_pending_approvals_appear_live_and_are_approved_and_denied_from_the_page(cloud, api, page):
    owner = signup(api, workspace_name="Careful Ltd", tier="pro")
    agent = create_agent(owner, "careful", "sre", tools=["calculator", "current_time"],
                         tool_policies={"calculator": "ask", "current_time": "ask"})
    page.sign_in(owner.email, PASSWORD)
    page.go("Approvals")
    page.until(lambda: page.text("#approvals-list") == "No tool calls are waiting for approval.",
               message="the empty list")
    assert page.unlabelled_controls() == []

    # Requested while the page is open: it appears without a reload. (A second workspace subscriber, this
    # test's, tells a page that missed the frame from a frame that was never sent.)
    watcher = LiveClient(cloud.ws_url, owner.headers)
    try:
        watcher.send({"action": "subscribe", "workspace": True})
        assert watcher.next(type_="subscribed") == {"type": "subscribed", "workspace": True}
        first = launch(owner, agent["id"], 'Compute.\n/tool calculator {"expression": "6 * 7"}').json()
        while (frame := watcher.next(timeout=90, type_="run.event"))["event"]["type"] != "approval.requested":
            pass
        assert frame["run_id"] == first["id"]
    finally:
        watcher.close()
    page.until(lambda: list(shown(page).values()) == ["calculator"], timeout=90, message="the request, live")
    assert '"expression": "6 * 7"' in page.text("#approvals-list .approval-input")
    assert page.unlabelled_controls() == []
    page.screenshot("pending")
    page.find("#approvals-list .approval button.approve").click()
    page.until(lambda: page.text("#approvals-message") == "calculator approved.", message="the decision")
    page.until(lambda: shown(page) == {}, message="the decided approval leaves the list")
    done = wait_for(owner, first["id"])
    assert done["status"] == "succeeded" and "calculator: 42" in done["output"]

    # Two calls in one turn: one denied here with a reason, the other decided elsewhere (the API).
    calls = [{"name": "calculator", "input": {"expression": "2 + 3"}}, {"name": "current_time", "input": {}}]
    second = launch(owner, agent["id"], "Both.\n/tools " + json.dumps(calls)).json()
    page.until(lambda: sorted(shown(page).values()) == ["calculator", "current_time"], timeout=60,
               message="both requests, live")
    by_tool = {tool: approval_id for approval_id, tool in shown(page).items()}
    card = f"#approvals-list .approval[data-approval='{by_tool['current_time']}']"
    page.fill(f"{card} input[name=reason]", "No clocks on Fridays.")
    page.find(f"{card} button.deny").click()
    page.until(lambda: page.text("#approvals-message") == "current_time denied.", message="the denial")
    page.until(lambda: list(shown(page).values()) == ["calculator"], message="the denied call leaves the list")
    decided = owner.post(f"/approvals/{by_tool['calculator']}", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    page.until(lambda: shown(page) == {}, message="a decision made elsewhere, live")
    page.screenshot("all-decided")

    done = wait_for(owner, second["id"])
    assert done["status"] == "succeeded", done
    results = {e["data"]["name"]: e["data"] for e in events_of(owner, second["id"]) if e["type"] == "tool.result"}
    assert results["calculator"]["content"] == "5" and results["calculator"]["is_error"] is False
    assert results["current_time"]["is_error"] is True
    assert "No clocks on Fridays." in results["current_time"]["content"]
