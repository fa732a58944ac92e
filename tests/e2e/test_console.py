"""The web console through the local API Gateway (no browser): its routes reach ConsoleFunction, and
its config points at the local WebSocket API — from the environment, as on AWS."""

from __future__ import annotations

import httpx


def test_the_console_is_served_on_the_api_origin_under_the_stage(cloud, api):
    bare = api.get("/console")
    assert bare.status_code == 301 and bare.headers["location"] == "console/"
    page = api.get("/console/")  # API Gateway routes the trailing slash to the /console resource
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store" and page.headers["x-content-type-options"] == "nosniff"
    assert "js/main.js" in page.text
    assert httpx.get(cloud.console_url).text == page.text  # the URL `make dev` prints
    script = api.get("/console/js/main.js")
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert api.get("/console/js/missing.js").status_code == 404


def test_its_config_and_policy_name_the_local_websocket_api(cloud, api):
    config = api.get("/console/config.json").json()
    assert config["live_url"] == cloud.ws_url
    origin = cloud.ws_url.rsplit("/", 1)[0]  # ws://127.0.0.1:<port>
    policy = api.get("/console/").headers["content-security-policy"]
    assert f"connect-src 'self' {origin};" in policy

