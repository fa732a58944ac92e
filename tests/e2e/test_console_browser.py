"""The web console in a real browser (headless Chromium driven by Selenium) against the local cloud.

A workspace owner signs in, creates an agent, launches a run and watches every event arrive live
(the run's tool is held until the page has shown the events before it, so they can only have come
over the WebSocket API), then sees the usage gauges move — also while the usage page is open. The
operator signs in with the local operator's AWS credentials (SigV4 signed in the page) and sees
every workspace's cost against its price and which are near a limit.

Screenshots of each step are kept in .artifacts/console/<test>/. Without Chromium the tests are
skipped, saying how to install it.
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal

import pytest

from tests.support import (
    PASSWORD,
    create_agent,
    events_of,
    launch,
    served,
    set_tier,
    signup,
    table_items,
    tools_replaced_by,
    until,
    wait_for,
    with_api_key,
)

pytestmark = pytest.mark.slow

CALCULATION = 'What is our monthly error budget?\n/tool calculator {"expression": "(1 - 0.999) * 30 * 24 * 60"}'


def usd_shown(value: str) -> str:
    """How the console shows an amount of the API: exact, at least two decimals, thousands separated."""
    amount = Decimal(value)
    whole, _, fraction = f"{abs(amount):.6f}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{'−' if amount < 0 else ''}${int(whole):,}.{fraction}"


def test_an_owner_signs_in_launches_a_run_sees_its_events_live_and_the_usage_move(cloud, api, page):
    owner = signup(api, workspace_name="Engines Ltd")  # the free tier: 5 requests a second
    page.sign_in(owner.email, PASSWORD)
    assert owner.email in page.text("#who")
    page.screenshot("signed-in")

    page.go("Usage")
    assert page.gauge("runs_per_day") == {"now": "0", "max": "50", "words": "0 of 50 (0.0%)",
                                          "label": "Runs today", "shown": "0 of 50 (0.0%)"}
    assert page.gauge("budget_usd_per_month")["words"] == "$0.00 of $1.00 (0.0%)"
    page.screenshot("usage-before")

    page.go("Agents and runs")
    page.fill("#create-agent input[name=agent-name]", "sre-bot")
    page.choose("#create-agent select[name=personality]",
                next(o.text for o in page.all("#create-agent option") if o.text.startswith("SRE")))
    page.find("#create-agent button[type=submit]").click()
    page.until(lambda: page.text("#create-agent .message") == "Agent sre-bot created.", message="the new agent")

    # The run's one tool call waits until the page has shown everything before it: what the page
    # shows by then can only have come live, over the WebSocket API.
    tool_reached, release = threading.Event(), threading.Event()

    def hold(call_number, ctx):
        tool_reached.set()
        assert release.wait(60), "the test never let the tool run"

    with tools_replaced_by(hold):
        page.choose("#launch-run select[name=agent]", "sre-bot")
        page.fill("#launch-run textarea[name=input]", CALCULATION)
        page.find("#launch-run button[type=submit]").click()
        page.until(lambda: re.fullmatch(r"Run [0-9A-Z]{26}", page.heading()), message="the run's page")
        run_id = page.heading().split()[1]
        try:
            assert tool_reached.wait(60), "the run never called its tool"
            page.until(lambda: page.run_events() == [(1, "run.queued"), (2, "run.started"), (3, "model.called"),
                                                     (4, "tool.called")] and page.text("#run-status") == "running",
                       message="the events before the tool call, live, and the status running")
            assert page.text("#run-steps") == "1" and page.text("#run-tool-calls") == "0"
            page.screenshot("run-live-at-the-tool-call")
        finally:
            release.set()
        page.until(lambda: page.text("#run-status") == "succeeded", timeout=90, message="the run's end, live")

    stored = events_of(owner, run_id)
    shown = page.run_events()
    assert shown == [(event["seq"], event["type"]) for event in stored], "every stored event, in order, once"
    assert [kind for _, kind in shown] == ["run.queued", "run.started", "model.called", "tool.called",
                                           "tool.result", "model.called", "run.succeeded"]
    run = wait_for(owner, run_id)
    assert page.text("#run-steps") == "2" and page.text("#run-tool-calls") == "1"
    page.until(lambda: page.find("#run-cost data").get_attribute("value") == run["usage"]["cost_usd"],
               message="the run's model cost")
    assert page.text("#run-cost") == usd_shown(run["usage"]["cost_usd"])
    page.until(lambda: "calculator: 43.2" in page.text("#run-output"), message="the run's answer")
    page.screenshot("run-succeeded")

    page.go("Usage")
    assert page.gauge("runs_per_day")["words"] == "1 of 50 (2.0%)"
    month = served(lambda: owner.get("/usage", params={"period": "month"})).json()["limits"]["budget_usd_per_month"]
    budget = page.gauge("budget_usd_per_month")
    assert Decimal(budget["now"]) == Decimal(month["used"]) > 0
    assert budget["shown"] == f"{usd_shown(month['used'])} of $1.00 ({month['percent']:.1f}%)"
    page.until(lambda: page.find("#live-state").text == "Live", message="the live connection")
    page.screenshot("usage-after-the-run")

    # With the usage page open, a run launched elsewhere (the API) moves the gauge: no reload.
    # The page polls as the owner does: on the free tier's 5 requests a second the launch may be throttled
    # (429 with Retry-After); a client retries it with the same Idempotency-Key, as the docs say.
    agent_id = next(a["id"] for a in served(lambda: owner.get("/agents")).json()["items"])
    other = served(lambda: launch(owner, agent_id, "Hello again.", key="console-second-run"))
    assert other.status_code == 202, other.text
    page.until(lambda: page.gauge("runs_per_day")["now"] == "2", message="the gauge moving live")
    assert page.gauge("runs_per_day")["shown"] == "2 of 50 (4.0%)"
    wait_for(owner, other.json()["id"])
    page.screenshot("usage-moved-live")


def test_the_operator_sees_each_workspace_cost_against_its_price_and_who_is_near_a_limit(cloud, api, page):
    starter = signup(api, workspace_name="Starter Co", tier="starter")
    big = signup(api, workspace_name="Big Corp")
    set_tier(api, big.workspace_id, "enterprise", limit_overrides={"price_usd_per_month": "4800"})
    runs = []
    for tenant in (starter, big):
        agent = create_agent(tenant, "sre-bot", "sre")
        launched = launch(tenant, agent["id"], CALCULATION)
        assert launched.status_code == 202, launched.text
        runs.append((tenant, launched.json()["id"]))
    for tenant, run_id in runs:
        assert wait_for(tenant, run_id)["status"] == "succeeded"
    # Big Corp's budget is lowered below what it used this month: it is past 80% of a limit.
    set_tier(api, big.workspace_id, "enterprise",
             limit_overrides={"price_usd_per_month": "4800", "budget_usd_per_month": "0.005"})
    report = api.get("/admin/usage", params={"period": "month", "limit": 100}, auth=api.operator)
    assert report.status_code == 200, report.text
    rows = {row["workspace_id"]: row for row in report.json()["items"]}

    session = cloud.operator_session  # the console takes temporary credentials only
    page.operator_sign_in(session.access_key_id, "not-the-secret", session.session_token)
    page.until(lambda: "may not call the operator routes" in page.text("#operator-sign-in .message"),
               message="a wrong secret refused")
    page.operator_sign_in(session.access_key_id, session.secret_access_key, session.session_token)
    page.until(lambda: page.heading() == "Cost against price", message="the operator's view")
    page.until(lambda: page.all(f"#cost-rows tr[data-workspace='{big.workspace_id}']"), message="the workspaces")
    page.screenshot("operator-cost-against-price")

    for tenant, name, tier, price in ((starter, "Starter Co", "starter", "$49.00"), (big, "Big Corp", "enterprise",
                                                                                       "$4,800.00")):
        row = page.find(f"#cost-rows tr[data-workspace='{tenant.workspace_id}']")
        api_row = rows[tenant.workspace_id]
        def cell(css, row=row):
            return row.find_element("css selector", css)

        assert cell(".name").text == name and cell(".tier").text == tier
        assert cell(".price").text == price
        for css, key in ((".price", "price_usd"), (".model", "model_cost_usd"), (".infra", "infra_cost_usd"),
                         (".cost", "cost_usd"), (".margin", "margin_usd")):
            assert cell(f"{css} data").get_attribute("value") == api_row[key], (name, key)
            assert cell(css).text == usd_shown(api_row[key]), (name, key)
        assert Decimal(api_row["model_cost_usd"]) > 0 and Decimal(api_row["infra_cost_usd"]) > 0
        assert Decimal(api_row["margin_usd"]) == Decimal(api_row["price_usd"]) - Decimal(api_row["cost_usd"])
        assert cell(".percent").text == f"{api_row['cost_percent_of_price']}%"

    used = Decimal(rows[big.workspace_id]["model_cost_usd"])
    percent = (used * 1000 / Decimal("0.005")).to_integral_value(rounding="ROUND_FLOOR") / 10
    near = {item.get_attribute("data-workspace"): item.text for item in page.all("#near-limit li[data-workspace]")}
    assert big.workspace_id in near and starter.workspace_id not in near
    assert near[big.workspace_id] == (f"Big Corp (enterprise): model budget {percent:.1f}% "
                                      f"({usd_shown(str(used))} of $0.005)")


def test_the_page_works_from_the_keyboard_names_its_controls_and_refuses_html_from_strings(cloud, api, page):
    from selenium.common.exceptions import JavascriptException
    from selenium.webdriver.common.keys import Keys

    owner = signup(api)
    page.press_tab_until("#sign-in input[name=email]")  # past the skip link and the navigation
    page.type_keys(owner.email, Keys.TAB, PASSWORD, Keys.ENTER)
    page.until(lambda: page.heading() == "Agents and runs", message="signed in from the keyboard")
    health = api.get("/health").json()["status"]
    for href, heading in (("#/usage", "Usage"), ("#/health", "Health"), ("#/runs", "Agents and runs")):
        # Each view moves the focus to its heading; the navigation is back up the page.
        page.press_tab_until(f"#nav a[href='{href}']", backwards=True)
        page.type_keys(Keys.ENTER)
        page.until(lambda heading=heading: page.heading() == heading, message=f"the {heading} page from the keyboard")
        page.until(lambda: page.driver.execute_script("return document.activeElement.tagName;") == "H1",
                   message="the focus on the new page's heading")
        assert page.unlabelled_controls() == [], heading
        if heading == "Health":
            page.until(lambda: page.text("#health-status") == health, message="the health panel")
            page.screenshot("health")

    # The page's policy: a string never becomes HTML or script, inline style is not applied.
    with pytest.raises(JavascriptException, match="TrustedHTML"):
        page.driver.execute_script("document.querySelector('main').innerHTML = '<img src=x id=injected>';")
    with pytest.raises(JavascriptException, match="TrustedScript"):
        page.driver.execute_script("const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                                   "document.body.append(s);")
    assert page.all("#injected") == [] and page.driver.execute_script("return window.ran === undefined;")
    refused = page.policy_violations()
    assert any("TrustedHTML" in message for message in refused) and any("TrustedScript" in m for m in refused)
    page.logs.clear()  # what this test provoked; the page itself must report nothing (the fixture checks)


def test_the_agent_page_lists_its_versions_and_rolls_back_to_one(cloud, api, page):
    owner = signup(api, workspace_name="Versions Ltd", tier="pro")
    agent = create_agent(owner, "sre-bot", "sre", system_prompt="Keep the pager quiet.")
    for change in ({"system_prompt": "Page everyone."}, {"tools": ["calculator"]}):
        changed = api.patch(owner.path(f"/agents/{agent['id']}"), headers=owner.headers, json=change)
        assert changed.status_code == 200, changed.text
    page.sign_in(owner.email, PASSWORD)
    page.find(f"tr[data-agent='{agent['id']}'] a").click()
    page.until(lambda: page.heading() == "Agent sre-bot", message="the agent's page")

    def shown() -> list[tuple[str, str, str]]:
        return [(row.get_attribute("data-version"), row.find_element("css selector", ".change").text,
                 row.find_element("css selector", ".prompt").text) for row in page.all("#versions-list tr")]

    page.until(lambda: len(shown()) == 3, message="the versions")
    assert shown() == [("3", "update", "Page everyone."), ("2", "update", "Page everyone."),
                       ("1", "create", "Keep the pager quiet.")], "newest first, each as it was"
    assert page.text("#versions-list tr[data-version='3'] th") == "v3 (current)"
    assert page.all("#versions-list tr[data-version='3'] button") == [], "no rolling back to what it is"
    assert page.text("#agent-version") == "3" and page.unlabelled_controls() == []
    page.screenshot("agent-versions")

    page.find("#versions-list tr[data-version='1'] button").click()
    page.until(lambda: page.text("#agent-versions .message") == "Rolled back: version 4 is equal to version 1.",
               message="the rollback's outcome")
    assert shown()[0] == ("4", "rollback to v1", "Keep the pager quiet.")
    assert page.text("#agent-version") == "4" and page.text("#agent-prompt") == "Keep the pager quiet."
    assert page.text("#agent-tools") == ", ".join(agent["tools"])
    stored = owner.get(f"/agents/{agent['id']}").json()
    assert (stored["version"], stored["system_prompt"], stored["tools"]) == (4, "Keep the pager quiet.", agent["tools"])
    page.screenshot("agent-rolled-back")

    run = launch(owner, agent["id"], "Hello.").json()
    page.driver.execute_script("location.hash = arguments[0];", f"#/runs/{run['id']}")
    page.until(lambda: page.heading() == f"Run {run['id']}", message="the run's page")
    assert page.text("#run-agent-version") == "v4"
    wait_for(owner, run["id"])

STORED_IN_THE_BROWSER = """
const done = arguments[arguments.length - 1];
(async () => {
  const databases = indexedDB.databases ? (await indexedDB.databases()).map((d) => d.name) : [];
  const cacheNames = self.caches ? await caches.keys() : [];
  const storage = (area) => Object.fromEntries(Array.from({length: area.length}, (_, i) => area.key(i))
                                                .map((k) => [k, area.getItem(k)]));
  done({local: storage(localStorage), session: storage(sessionStorage), cookie: document.cookie,
        databases, caches: cacheNames, url: location.href, history: history.length});
})().catch((error) => done({error: String(error)}));
"""


def test_the_console_takes_only_temporary_credentials_and_keeps_nothing_in_the_browser(cloud, api, page):
    owner = with_api_key(signup(api, workspace_name="Careful Co"))

    def sessions() -> list[dict]:
        return [i for i in table_items(cloud) if i["pk"].startswith("SESSION#") and i.get("user_id") == owner.user_id]

    # an API key pasted as the password (or a refresh token) is refused in the page: nothing is sent
    for pasted in (owner.api_key, owner.refresh_token):
        page.fill("#sign-in input[name=email]", owner.email)
        page.fill("#sign-in input[name=password]", pasted)
        page.find("#sign-in button[type=submit]").click()
        page.until(lambda: "API keys are for programs" in page.text("#sign-in .message"), message="an API key refused")
        assert page.find("#sign-in input[name=password]").get_attribute("value") == ""
        assert page.heading() == "Sign in to AgentHQ"
    # an IAM user's long-lived access key is refused for the operator, before anything is signed
    page.operator_sign_in(cloud.operator.access_key_id, cloud.operator.secret_access_key)
    page.until(lambda: "long-lived access keys" in page.text("#operator-sign-in .message"),
               message="a long-lived AWS key refused")
    assert page.find("#operator-sign-in input[name=secret-access-key]").get_attribute("value") == ""
    assert len(sessions()) == 1  # the signup's: nothing was sent to log in with what was pasted
    page.screenshot("long-lived-credentials-refused")

    # e-mail and password: a session, whose tokens live in the page's memory only
    page.sign_in(owner.email, PASSWORD)
    stored = page.driver.execute_async_script(STORED_IN_THE_BROWSER)
    assert "error" not in stored, stored
    assert stored["local"] == {} and stored["session"] == {} and stored["cookie"] == "", stored
    assert stored["databases"] == [] and stored["caches"] == [], stored
    assert page.driver.get_cookies() == []
    for secret in (owner.api_key, PASSWORD):
        assert secret not in stored["url"]
    # leaving the page ends its session on the server: the refresh token the page held is dead with it
    assert len(sessions()) == 2 and not [s for s in sessions() if s.get("revoked_at")]
    page.driver.get("about:blank")  # pagehide: a keepalive logout
    until(lambda: [s.get("revoked_reason") for s in sessions()].count("logout") == 1,
               "the console's session revoked when the page was left")
    assert api.get("/me", headers=owner.headers).status_code == 200  # the signup's own session still works


def test_the_mailed_link_opens_the_console_which_verifies_the_address(cloud, api, page):
    from local.mailbox import read_mailbox

    with cloud.email_verification(required=True):
        owner = signup(api, workspace_name="Mailed Co")
        (mail,) = read_mailbox(cloud.mailbox, to=owner.email)
        link = re.search(r"http://\S+/console/#/verify-email/ahv_\S+", mail.get_content()).group(0)
        page.sign_in(owner.email, PASSWORD)
        page.until(lambda: "is not verified yet" in page.text("#verification-notice"), message="the notice")
        page.find("#resend-verification").click()
        page.until(lambda: "A new link was mailed" in page.text("#verification-notice .message"),
                   message="a new link mailed")
        assert len(read_mailbox(cloud.mailbox, to=owner.email)) == 2
        page.screenshot("unverified-notice")

        page.driver.get(link)  # the first link still works (each is single-use, and this one is unused)
        page.until(lambda: page.heading() == "Verify your e-mail address", message="the verify page")
        page.until(lambda: "is verified" in page.text("main .message"), message="verified")
        assert "ahv_" not in page.driver.current_url  # the token left the address bar (and the history)
        page.screenshot("verified")
        assert api.get("/me", headers=owner.headers).json()["user"]["email_verified"] is True

        page.driver.get(link)  # used: refused
        page.until(lambda: "already used" in page.text("main .message"), message="a used link refused")


def test_mcp_servers_show_their_tools_and_status_and_a_tool_is_given_to_an_agent(cloud, api, page):
    from local.mcp_demo import McpDemo

    token = "console-mcp-token-5f0c1e"
    demo = McpDemo(token).start()
    try:
        owner = signup(api, workspace_name="Tools Inc", tier="pro")
        agent = create_agent(owner, "helper", "sre")
        page.sign_in(owner.email, PASSWORD)
        page.go("MCP servers")
        assert page.text("#mcp-servers") == "No MCP servers yet: register one below."

        page.fill("#register-mcp input[name=mcp-name]", "demo")
        page.fill("#register-mcp input[name=mcp-url]", demo.url)
        page.fill("#register-mcp input[name=mcp-header-value]", f"Bearer {token}")
        page.find("#register-mcp button[type=submit]").click()
        section = page.until(lambda: page.find(".mcp-server[data-state='ok']"), message="the registered server")
        assert page.text(".mcp-server .status").startswith("Connected") and "5 tools" in page.text(".mcp-server .status")
        assert [row.get_attribute("data-tool") for row in page.all(".mcp-server tbody tr")] == [
            "mcp__demo__echo", "mcp__demo__add", "mcp__demo__slow", "mcp__demo__fail", "mcp__demo__huge"]
        assert "Authorization (values are never shown)" in section.text
        assert token not in page.driver.page_source, "the header value is not on the page"
        assert page.unlabelled_controls() == []
        page.screenshot("mcp-registered")

        page.choose("tr[data-tool='mcp__demo__echo'] select", "helper")
        page.find("tr[data-tool='mcp__demo__echo'] button").click()
        page.until(lambda: page.text("#mcp-message") == "helper can now use mcp__demo__echo.",
                   message="the tool given")
        assert owner.get(f"/agents/{agent['id']}").json()["tools"] == [*agent["tools"], "mcp__demo__echo"]

        demo.change_tools()
        page.find(".mcp-server[data-server] button[aria-label='Refresh demo']").click()
        page.until(lambda: page.all("tr[data-tool='mcp__demo__extra']"), message="the changed tool list")
        assert page.all("tr[data-tool='mcp__demo__add']") == []
        page.screenshot("mcp-refreshed")

        page.fill("#register-mcp input[name=mcp-name]", "inside")
        page.fill("#register-mcp input[name=mcp-url]", "http://169.254.169.254/latest")
        page.find("#register-mcp button[type=submit]").click()
        page.until(lambda: "not allowed" in page.text("#mcp-message"), message="the refused address")

        page.find("button[aria-label='Remove demo']").click()
        page.until(lambda: page.text("#mcp-servers") == "No MCP servers yet: register one below.",
                   message="the server removed")
    finally:
        demo.stop()
