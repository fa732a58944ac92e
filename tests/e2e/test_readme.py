"""The README's first session works as written, against the local cloud."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from decimal import Decimal

import pytest

from tests.support import doc_block, unique_email

pytestmark = pytest.mark.slow


def first_session() -> str:
    return doc_block("README.md", "first-session")


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's session uses curl")
def test_the_readme_first_session_works(cloud):
    script = first_session().replace("http://127.0.0.1:3000/v1", cloud.rest_url)
    script = script.replace("ada@example.com", unique_email("ada"))  # the session signs up once per run
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"status":"ok"' in out
    assert "Coordinator" in out or "coordinator" in out.lower()
    assert "succeeded" in out
    events = re.findall(r"^\d+ ([a-z.]+)$", out, re.M)
    assert events == ["run.queued", "run.started", "model.called", "tool.called", "tool.result", "model.called",
                      "run.succeeded"]
    assert "calculator: 43.2" in out
    budget = ast.literal_eval(out.strip().splitlines()[-1])  # the month's model budget, as the usage API shows it
    assert budget["limit"] == "1.000000" and budget["period"] == "month" and Decimal(budget["used"]) > 0
