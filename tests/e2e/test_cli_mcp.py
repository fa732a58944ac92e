"""`agenthq mcp add|list|refresh|remove` as a user runs it against the local cloud (a separate
process), with local/mcp_demo.py's MCP server behind a bearer token."""

from __future__ import annotations

import json

import pytest

from local.mcp_demo import McpDemo
from tests.support import PASSWORD, signup

pytestmark = pytest.mark.slow

TOKEN = "cli-demo-token-0123456789"


def test_add_list_refresh_and_remove_an_mcp_server(api, agenthq):
    demo = McpDemo(TOKEN).start()
    try:
        owner = signup(api, tag="cli-mcp", tier="pro")
        assert agenthq("login", "--email", owner.email, "--password", PASSWORD).returncode == 0

        added = agenthq("mcp", "add", "demo", demo.url, "--bearer-from-env", "DEMO_TOKEN", DEMO_TOKEN=TOKEN)
        assert added.returncode == 0, added.stderr
        assert "status ok" in added.stdout and "mcp__demo__echo" in added.stdout
        assert "headers Authorization (values are never shown)" in added.stdout
        assert TOKEN not in added.stdout + added.stderr
        assert f"Bearer {TOKEN}" in demo.seen_authorization

        listed = agenthq("mcp", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [server] = json.loads(listed.stdout)
        assert server["name"] == "demo" and "mcp__demo__add" in [t["name"] for t in server["tools"]]

        demo.change_tools()
        refreshed = agenthq("mcp", "refresh", "demo")
        assert refreshed.returncode == 0, refreshed.stderr
        assert "mcp__demo__extra" in refreshed.stdout and "mcp__demo__add" not in refreshed.stdout

        refused = agenthq("mcp", "add", "inside", "http://169.254.169.254/latest")
        assert refused.returncode != 0 and "not allowed" in refused.stderr

        removed = agenthq("mcp", "remove", "demo")
        assert removed.returncode == 0 and server["id"] in removed.stdout, removed.stderr
        assert agenthq("mcp", "list").stdout.strip() == "no MCP servers"
        assert agenthq("mcp", "remove", "demo").returncode != 0
    finally:
        demo.stop()
