"""The console when a run's subscribe finds the connection following the run already
(``already_subscribed``: the WebSocket API handled its view's earlier unsubscribe late, or lost it):
the server replays nothing again (decisions.md, 320), so the page reads what it has not shown over
REST, and the run's page still shows every event, each once, in order. Headless Chromium, as
tests/e2e/test_console_browser.py."""

from __future__ import annotations

import pytest

from local.lambda_runtime import InvocationFault
from tests.support import PASSWORD, create_agent, events_of, launch, signup, wait_for

pytestmark = pytest.mark.slow


def test_a_run_page_opened_again_while_its_connection_still_follows_the_run_shows_every_event_once(
        cloud, api, page):  # noqa: F811
    owner = signup(api, workspace_name="Twice Ltd", tier="pro")
    agent = create_agent(owner, "twice", "sre")
    run = launch(owner, agent["id"], 'Add.\n/tool calculator {"expression": "2 + 3"}').json()
    assert wait_for(owner, run["id"])["status"] == "succeeded"
    stored = [e["seq"] for e in events_of(owner, run["id"])]
    page.sign_in(owner.email, PASSWORD)

    def shown() -> list[int]:
        return [int(li.get_attribute("data-seq")) for li in page.all("li.event")]

    page.driver.execute_script("location.hash = arguments[0];", f"#/runs/{run['id']}")
    page.until(lambda: shown() == stored, message="the run's events, replayed")
    lost = InvocationFault(function="LiveFunction", times=1, when="before",  # the view's unsubscribe is lost
                           match=lambda event: event.get("requestContext", {}).get("routeKey") == "unsubscribe")
    cloud.runtime.faults.append(lost)
    try:
        page.go("Agents and runs")
        page.until(lambda: lost.fired == 1, message="the unsubscribe, lost")
        page.driver.execute_script("location.hash = arguments[0];", f"#/runs/{run['id']}")
        page.until(lambda: shown() == stored, message="every event again, over REST")
    finally:
        cloud.runtime.faults.remove(lost)
    assert shown() == stored
