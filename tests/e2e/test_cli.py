"""The `agenthq admin` command against the local cloud, as an operator runs it:
a separate process, credentials from the environment (botocore's chain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local.template import ROOT
from tests.support import signup

pytestmark = pytest.mark.slow


@pytest.fixture()
def agenthq(cloud, tmp_path):
    def run(*args: str, secret: str | None = None, credentials: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
               "PYTHONPATH": str(ROOT / "cli"), "AGENTHQ_API_URL": cloud.rest_url,
               "AWS_REGION": cloud.config.stack.region, "AWS_EC2_METADATA_DISABLED": "true"}
        if credentials:
            env |= {"AWS_ACCESS_KEY_ID": cloud.operator.access_key_id,
                    "AWS_SECRET_ACCESS_KEY": secret or cloud.operator.secret_access_key}
        return subprocess.run([sys.executable, "-m", "agenthq_cli", *args], env=env, capture_output=True,
                              text=True, timeout=120)
    return run


def test_the_operator_sets_a_tier_with_the_cli_and_the_workspace_gets_its_limits(api, agenthq):
    owner = signup(api)
    done = agenthq("admin", "workspace", "set-tier", owner.workspace_id, "enterprise",
                   "--override", "max_agents=120", "--override", "price_usd_per_month=4800.50")
    assert done.returncode == 0, done.stderr
    changed = json.loads(done.stdout)
    assert changed["tier"] == "enterprise"
    assert changed["limit_overrides"] == {"max_agents": 120, "price_usd_per_month": "4800.50"}

    mine = owner.get("").json()
    assert mine["tier"] == "enterprise" and mine["limits"]["max_agents"] == 120

    shown = agenthq("admin", "workspace", "get", owner.workspace_id)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["this_month"]["price_usd"] == "4800.500000"

    usage = agenthq("admin", "usage", "--json")
    assert usage.returncode == 0, usage.stderr
    rows = {r["workspace_id"]: r for r in json.loads(usage.stdout)["items"]}
    assert rows[owner.workspace_id]["price_usd"] == "4800.500000"
    table = agenthq("admin", "usage")
    assert owner.workspace_id in table.stdout and "infra" in table.stdout

    listed = agenthq("admin", "workspace", "list")
    assert owner.workspace_id in {w["id"] for w in json.loads(listed.stdout)["items"]}

    back = agenthq("admin", "workspace", "set-tier", owner.workspace_id, "starter")
    assert back.returncode == 0, back.stderr
    assert owner.get("").json()["limits"]["max_agents"] == 10


def test_the_cli_reports_refusals_and_missing_credentials(api, agenthq):
    owner = signup(api)
    wrong = agenthq("admin", "workspace", "set-tier", owner.workspace_id, "pro", secret="not-the-secret")
    assert wrong.returncode == 1 and "403 forbidden" in wrong.stderr, wrong.stderr
    bad = agenthq("admin", "workspace", "set-tier", owner.workspace_id, "gold")
    assert bad.returncode == 1 and "400 invalid_request" in bad.stderr, bad.stderr
    none = agenthq("admin", "workspace", "get", owner.workspace_id, credentials=False)
    assert none.returncode == 2 and "No AWS credentials" in none.stderr, none.stderr
    assert owner.get("").json()["tier"] == "free"
