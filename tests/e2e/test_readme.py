"""The documented sessions work as written: the README's first session (against the test
session's local cloud) and self-hosting.md's quick start (on a copy of the checkout, with
`make dev` in one process group and the second terminal's commands in a shell)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from local.template import ROOT
from tests.support import DevServer, doc_block, unique_email

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


def checkout_copy(parent: Path) -> Path:
    """What `git clone … agenthq` gives: the files git tracks or would track (nothing it ignores:
    no .venv, .cache, .data), as they are in this checkout. ``.venv`` and ``.cache`` are then shared
    with this checkout, standing in for the first `make`'s installs (minutes, and the network)."""
    clone = parent / "agenthq"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # (a file deleted but not yet staged is listed too)
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name, follow_symlinks=False)
    for shared in (".venv", ".cache"):
        (clone / shared).symlink_to((ROOT / shared).resolve())
    return clone


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("git") is None, reason="the quick start uses both")
def test_the_self_hosting_quick_start_works_on_a_fresh_copy(tmp_path):
    first = doc_block("docs/self-hosting.md", "quick-start-terminal-1").strip().splitlines()
    assert first[0].startswith("git clone ") and first[0].endswith(" agenthq") and first[1:] == ["cd agenthq", "make dev"]
    clone = checkout_copy(tmp_path)

    # Terminal 1: `make dev` (its installs already made: -o), on free ports instead of 3000/3001.
    dev = DevServer(["make", "-o", ".venv/.installed", "dev"], cwd=clone,
                    env={"AGENTHQ_PORT": "0", "AGENTHQ_WS_PORT": "0"})
    try:
        dev.start(timeout=120)
        # Terminal 2, word for word but for the URLs: the commands' default is make dev's 3000/3001.
        session = doc_block("docs/self-hosting.md", "quick-start-terminal-2").replace(
            "http://127.0.0.1:3000/v1", dev.rest_url)
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
               "PYTHONPATH": str(clone / "cli"),  # the copy's agenthq command (not the shared venv's install)
               "AGENTHQ_API_URL": dev.rest_url, "AGENTHQ_WS_URL": dev.ws_url}
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", session], cwd=tmp_path, env=env,
                                input="analytical-engine-1843\n",  # what `agenthq login` asks for
                                capture_output=True, text=True, timeout=180, start_new_session=True)
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert '"status":"ok"' in out and '"access_token"' in out
        assert "Logged in as ada@example.com" in out
        events = re.findall(r"^\s*\d+ ([a-z]+\.[a-z]+)", out, re.M)
        assert events == ["run.queued", "run.started", "model.called", "tool.called", "tool.result", "model.called",
                          "run.succeeded"], out
        assert "43.2" in out
        assert "free tier" in out, "agenthq usage shows the tier's limits"
    finally:
        stopped = dev.interrupt() if dev.process and dev.process.poll() is None else None
        dev.kill()
    output = "".join(dev.output)
    assert stopped is not None and "Stopped. Data is kept in" in output and "Traceback" not in output, output
