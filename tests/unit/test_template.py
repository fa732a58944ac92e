"""template.yaml is the single source of truth: the code must agree with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agenthq.store.base import BaseItem
from local.template import (
    ROOT,
    LocalStack,
    Resolver,
    functions,
    load_template,
    rest_api,
    state_machines,
    table_definition,
)

TEMPLATE = load_template()


def test_pynamodb_models_match_the_table_in_the_template():
    definition = table_definition(TEMPLATE, "t")["create"]
    schema = BaseItem._get_schema()
    template_keys = {k["AttributeName"]: k["KeyType"] for k in definition["KeySchema"]}
    model_keys = {k["AttributeName"]: k["KeyType"] for k in schema["key_schema"]}
    assert model_keys == template_keys
    template_gsis = {g["IndexName"]: {k["AttributeName"]: k["KeyType"] for k in g["KeySchema"]}
                     for g in definition["GlobalSecondaryIndexes"]}
    model_gsis = {g["index_name"]: {k["AttributeName"]: k["KeyType"] for k in g["key_schema"]}
                  for g in schema["global_secondary_indexes"]}
    assert model_gsis == template_gsis
    template_types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    model_types = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    assert model_types == template_types
    assert table_definition(TEMPLATE, "t")["ttl_attribute"] == BaseItem.expires_at.attr_name


def test_the_table_keeps_what_production_needs():
    props = TEMPLATE["Resources"]["Table"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["TimeToLiveSpecification"]["Enabled"] is True
    assert TEMPLATE["Resources"]["Table"]["DeletionPolicy"] == "Retain"


def test_every_function_has_its_code_and_handler():
    specs = functions(TEMPLATE, Resolver(TEMPLATE, LocalStack()))
    assert specs, "no functions in template.yaml"
    for spec in specs.values():
        module_file, attribute = spec.handler.rsplit(".", 1)
        source = spec.code_uri / f"{module_file}.py"
        assert source.exists(), f"{spec.logical_id}: {source} missing"
        assert f"def {attribute}" in source.read_text() or f"{attribute} =" in source.read_text()
        assert not (spec.code_uri / "requirements.txt").exists(), "dependencies belong to the layer"


def test_routes_have_a_stage_and_known_functions():
    api = rest_api(TEMPLATE)
    assert api.stage == "v1"
    names = set(functions(TEMPLATE, Resolver(TEMPLATE, LocalStack())))
    for route in api.routes:
        assert route.function in names
        assert route.path.startswith("/") and not route.path.startswith("/v1")
    assert any(r.path == "/health" and r.method == "GET" and not r.authorized for r in api.routes)


def test_unknown_routes_and_gateway_errors_use_the_error_format():
    responses = rest_api(TEMPLATE).gateway_responses
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == 403  # unsigned operator requests too
    for kind, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        rendered = body.replace("$context.requestId", "r").replace("$context.error.messageString", '"m"')
        assert set(json.loads(rendered)["error"]) == {"code", "message", "request_id"}, kind


@pytest.mark.parametrize("spec", state_machines(TEMPLATE, Resolver(TEMPLATE, LocalStack())), ids=lambda s: s.logical_id)
def test_state_machine_tasks_are_substituted_and_every_task_is_caught(spec):
    definition = json.loads(spec.definition)
    assert "${" not in spec.definition
    for name, state in definition["States"].items():
        if state["Type"] == "Task" and name != "RecordFailure":
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name
            assert state.get("Retry"), name


@pytest.mark.slow
def test_sam_validate_lint_passes(tmp_path):
    sam = Path(sys.executable).parent / "sam"
    assert sam.exists() or shutil.which("sam"), "aws-sam-cli is a dev dependency"
    result = subprocess.run([str(sam), "validate", "--lint"], cwd=ROOT, capture_output=True, text=True,
                            env={"SAM_CLI_TELEMETRY": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


def test_the_run_worker_outlives_a_model_call_and_each_slice_task_outlives_the_worker():
    """A slice always has time for the first model call of an invocation (decisions.md, 52):
    the worker's timeout holds the call's whole retry budget and the commit after it, and
    each task of the agent-run state machine waits longer than the worker can run."""
    from agenthq.runs.decisions import COMMIT_MARGIN_SECONDS
    from agenthq.settings import Settings

    timeout = TEMPLATE["Resources"]["RunStepsFunction"]["Properties"]["Timeout"]
    budget = Settings.from_env({"TABLE_NAME": "agenthq"}).model_call_budget_seconds
    assert timeout >= budget + COMMIT_MARGIN_SECONDS, (timeout, budget)
    (spec,) = [s for s in state_machines(TEMPLATE, Resolver(TEMPLATE, LocalStack()))
               if s.logical_id == "AgentRunStateMachine"]
    for name, state in json.loads(spec.definition)["States"].items():
        if state["Type"] == "Task" and "waitForTaskToken" not in state["Resource"]:
            assert state["TimeoutSeconds"] > timeout, name


def test_every_function_and_the_layer_run_python_3_13_on_arm64():
    """The Lambda runtime supported until 2029, on Graviton (20% less per GB-s); the layer is built for the
    same runtime and architecture, and the architecture the run worker prices its GB-s with
    (LAMBDA_ARCHITECTURE, agenthq.usage.infra) is the one each function runs on."""
    specs = functions(TEMPLATE, Resolver(TEMPLATE, LocalStack()))
    assert {(spec.runtime, spec.architecture) for spec in specs.values()} == {("python3.13", "arm64")}
    for spec in specs.values():
        assert spec.environment["LAMBDA_ARCHITECTURE"] == spec.architecture, spec.logical_id
    layer = TEMPLATE["Resources"]["CommonLayer"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}


def test_the_virtualenv_and_the_type_checks_use_the_runtimes_python():
    """`make` makes .venv with the Python the functions run on (and remakes one made by another Python);
    mypy and ruff check the code for that version."""
    import configparser
    import re
    import tomllib

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PYTHON_VERSION := 3\.13$", makefile, re.M)
    assert "VENV_STAMP := $(VENV)/.python-$(PYTHON_VERSION)" in makefile
    mypy = configparser.ConfigParser()
    mypy.read(ROOT / "mypy.ini")
    assert mypy["mypy"]["python_version"] == "3.13"
    assert tomllib.loads((ROOT / "ruff.toml").read_text())["target-version"] == "py313"
    assert sys.version_info[:2] == (3, 13), f"the tests run on {sys.version}, not the runtime's 3.13"


def test_a_virtualenv_made_by_another_python_is_made_again(tmp_path):
    """A checkout whose .venv a 3.11 made (installed, but without the stamp naming 3.13) gets a new one from
    `make`, and everything installed into it again; one that has the stamp is kept."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make here")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # not make's child
    plan = subprocess.run([make, "--no-print-directory", "-n", f"{venv}/.installed", f"VENV={venv}", f"PY={venv}/bin/python",
                           f"PYTHON={sys.executable}"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[:2] == [f"rm -rf {venv}", f"{sys.executable} -m venv {venv}"], lines
    assert any("pip install" in line and "requirements-dev.txt" in line for line in lines)
    (venv / ".python-3.13").touch()
    (venv / ".installed").touch()
    kept = subprocess.run([make, "--no-print-directory", "-n", f"{venv}/.installed", f"VENV={venv}", f"PY={venv}/bin/python",
                           f"PYTHON={sys.executable}"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert "rm -rf" not in kept.stdout and "-m venv" not in kept.stdout, kept.stdout
