"""`make sam-local` and local.bootstrap without Docker: moto's server (a process of its own) stands in
for docker-compose's DynamoDB Local and Step Functions Local, and fake `docker` and `sam` commands
record what make asks of them. What the env file names must be what bootstrap creates there.
(That DynamoDB Local, Step Functions Local and `sam local` then run the functions is not tried here:
the build machines have no Docker. docs/sam-local.md says so.)"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from local.dynamodb_local import free_port
from local.template import ROOT, load_template, table_definition

pytestmark = pytest.mark.slow

ENV = json.loads((ROOT / "local" / "sam-local-env.json").read_text())["Parameters"]
MAKE = shutil.which("make") or "make"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "moto's server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")  # nosec B106  # dummy, local


def bootstrap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "local.bootstrap", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_bootstrap_creates_the_table_and_state_machines_the_env_file_names(moto_server):
    first = bootstrap("--dynamodb", moto_server, "--stepfunctions", moto_server)
    assert first.returncode == 0, first.stderr
    assert f"table {ENV['TABLE_NAME']} created" in first.stdout
    for variable in ("STATE_MACHINE_ARN", "OFFBOARDING_STATE_MACHINE_ARN"):
        assert f"state machine {ENV[variable]} created" in first.stdout

    dynamodb = client("dynamodb", moto_server)
    table = dynamodb.describe_table(TableName=ENV["TABLE_NAME"])["Table"]
    wanted = table_definition(load_template(), ENV["TABLE_NAME"])
    assert table["KeySchema"] == wanted["create"]["KeySchema"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    assert table["StreamSpecification"]["StreamEnabled"]
    ttl = dynamodb.describe_time_to_live(TableName=ENV["TABLE_NAME"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == wanted["ttl_attribute"] and ttl["TimeToLiveStatus"] == "ENABLED"

    sfn = client("stepfunctions", moto_server)
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=ENV["STATE_MACHINE_ARN"])["definition"])
    assert definition["States"][definition["StartAt"]]["Parameters"]["FunctionName"] \
        == "arn:aws:lambda:us-east-1:123456789012:function:RunStepsFunction"  # what sam local start-lambda serves
    assert sfn.describe_state_machine(stateMachineArn=ENV["OFFBOARDING_STATE_MACHINE_ARN"])["status"] == "ACTIVE"

    again = bootstrap("--dynamodb", moto_server, "--stepfunctions", moto_server)
    assert again.returncode == 0, again.stderr
    assert f"table {ENV['TABLE_NAME']} already exists" in again.stdout
    assert f"state machine {ENV['STATE_MACHINE_ARN']} updated" in again.stdout
    assert len(sfn.list_state_machines()["stateMachines"]) == 2


def test_bootstrap_waits_for_the_endpoint_then_says_in_one_line_that_nothing_answers():
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = bootstrap("--dynamodb", closed, "--wait", "2")
    took = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: could not create table 'agenthq-local' at {closed}: Could not connect to the endpoint URL: \"{closed}/\""]
    assert took >= 2, "it waited for a container still starting"


def test_make_sam_local_starts_the_containers_creates_the_table_builds_and_serves_the_api(moto_server, tmp_path: Path):
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "sam"):  # a Docker whose engine answers, and a sam that only says what it was asked
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        (bin_dir / name).chmod(0o755)
    endpoints = f"--dynamodb {moto_server} --stepfunctions {moto_server} --table agenthq-make-sam-local"
    result = subprocess.run([MAKE, "-o", ".venv/.installed", "sam-local", f"SAM={bin_dir / 'sam'}",
                             f"BOOTSTRAP_ARGS={endpoints}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert log.read_text().splitlines() == ["docker info", "docker compose version", "docker compose up -d",
                                            "sam build", "sam local start-api"]
    assert "table agenthq-make-sam-local created" in result.stdout, "between compose up and sam build"
    out = result.stdout
    assert out.index("docker compose up -d") < out.index("created") < out.index(f"{bin_dir / 'sam'} build")
