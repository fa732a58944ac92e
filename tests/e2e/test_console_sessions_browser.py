"""The console's session view in a real browser (headless Chromium, Selenium) against the local cloud:
an owner starts a session, sends messages in a chat box, and sees the session's events arrive live
through the session's one cursor (the turn's tool is held until the page has shown the events before
it, so they can only have come over the WebSocket API), then the answers in the conversation."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.support import (
    PASSWORD,
    ConsolePage,
    create_agent,
    session_events_of,
    signup,
    tools_replaced_by,
)

pytestmark = pytest.mark.slow


def session_events_shown(page: ConsolePage) -> list[tuple[int, str]]:
    rows = page.driver.execute_script(
        "return [...document.querySelectorAll('#session-events li')]"
        ".map(li => [li.querySelector('.seq').textContent, li.querySelector('.type').textContent]);")
    return [(int(seq.lstrip("#")), kind) for seq, kind in rows]


def chat_shown(page: ConsolePage) -> list[tuple[str, str]]:
    rows = page.driver.execute_script(
        "return [...document.querySelectorAll('#session-chat li')]"
        ".map(li => [li.dataset.role, li.querySelector('pre').textContent]);")
    return [(role, text) for role, text in rows]


def stored_events(owner: Any, session_id: str) -> list[tuple[int, str]]:
    return [(e["seq"], e["type"]) for e in session_events_of(owner, session_id)]


def test_an_owner_holds_a_conversation_in_the_session_view_with_its_events_live(cloud, api, page):
    owner = signup(api, workspace_name="Chatty Ltd", tier="pro")
    create_agent(owner, "ops-bot", "sre")
    page.sign_in(owner.email, PASSWORD)
    page.go("Sessions")
    page.choose("#new-session select[name=agent]", "ops-bot")
    page.fill("#new-session input[name=title]", "Rollout")
    page.find("#new-session button[type=submit]").click()
    page.until(lambda: page.heading() == "Session Rollout", message="the new session's page")
    session_id = page.driver.execute_script("return location.hash").split("/")[-1]

    tool_reached, release = threading.Event(), threading.Event()

    def hold(call_number, ctx):
        tool_reached.set()
        assert release.wait(60), "the test never let the tool run"

    first = 'How many hosts?\n/tool calculator {"expression": "2 + 3"}'
    with tools_replaced_by(hold):
        page.fill("#session-input", first)
        page.find("#session-send button[type=submit]").click()
        try:
            assert tool_reached.wait(60), "the turn never called its tool"
            page.until(lambda: session_events_shown(page) == [(1, "run.queued"), (2, "run.started"),
                                                               (3, "model.called"), (4, "tool.called")],
                       message="the turn's events before its tool call, live")
            page.until(lambda: chat_shown(page) == [("user", first)], message="the message in the chat")
            page.screenshot("turn-one-live")
        finally:
            release.set()
        page.until(lambda: chat_shown(page) == [("user", first),
                                                ("assistant", "Offline answer: How many hosts?\ncalculator: 5")],
                   timeout=90, message="the answer in the chat")

    page.fill("#session-input", "And in staging?")
    page.find("#session-send button[type=submit]").click()
    page.until(lambda: len(chat_shown(page)) == 4 and page.text("#session-status") == "idle", timeout=90,
               message="the second answer")
    assert chat_shown(page)[2:] == [("user", "And in staging?"), ("assistant", "Offline answer: And in staging?")]
    page.until(lambda: session_events_shown(page) == stored_events(owner, session_id),
               message="every event of both turns, once, in the session's order")
    assert page.text("#session-turns") == "2"
    page.screenshot("two-turns")

    page.go("Sessions")
    assert page.text("#sessions-list tbody").startswith("Rollout")
