"""`sam build` makes the deployable artifacts, and every function imports and
answers using only what the built layer contains — so a runtime dependency
missing from layers/common/requirements.txt (present here only through the
dev virtualenv) fails this test, not a deployment.

The functions run on arm64 (template.yaml) and this machine is x86_64: the
deployable build's compiled modules cannot be imported here. So the build as
deployed is checked for what it holds (every compiled module an aarch64 ELF
for CPython 3.13), and the import checks run on a second build of the same
template with ``x86_64`` as the architecture, which must hold the very same
distributions at the same versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.template import ROOT, LocalStack, Resolver, functions, load_template

pytestmark = pytest.mark.slow

BUILD = ROOT / ".aws-sam" / "build"

CHECK = """
import json, sys
sys.path[:0] = [{layer!r}, {code!r}]
import app
assert "anthropic" not in sys.modules or {allow_sdk}, "the anthropic SDK is imported at cold start"

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "check", 256, "r-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:check"

event = json.loads({event!r} or "null")
result = app.handler(event, Context()) if event else {{}}
print(json.dumps({{"status": result.get("statusCode"), "body": result.get("body")}}))
"""


AARCH64 = 183  # ELF e_machine of AArch64 (EM_AARCH64)


def sam_build(home: Path, *args: str) -> None:
    sam = Path(sys.executable).parent / "sam"
    result = subprocess.run([str(sam), "build", *args], cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
                                 "SAM_CLI_TELEMETRY": "0"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def deployable(tmp_path_factory):
    """`sam build` as `make build` runs it: python3.13 on arm64, into .aws-sam/build."""
    sam_build(tmp_path_factory.mktemp("home"))
    return BUILD


@pytest.fixture(scope="module")
def build(deployable, tmp_path_factory):
    """The same template built for this machine's architecture (x86_64), so its functions can be imported here."""
    work = tmp_path_factory.mktemp("x86-build")
    text = (ROOT / "template.yaml").read_text()
    assert text.count("[arm64]") == 2, "Globals' Architectures and the layer's CompatibleArchitectures"
    x86 = text.replace("[arm64]", "[x86_64]").replace("BuildArchitecture: arm64", "BuildArchitecture: x86_64")
    (work / "template.yaml").write_text(x86.replace("LAMBDA_ARCHITECTURE: arm64", "LAMBDA_ARCHITECTURE: x86_64"))
    sam_build(tmp_path_factory.mktemp("home"), "--template-file", str(work / "template.yaml"), "--base-dir", str(ROOT),
              "--build-dir", str(work / "build"))
    return work / "build"


def distributions(layer: Path) -> set[str]:
    return {path.name for path in layer.glob("*.dist-info")}


def test_the_deployable_layer_is_python_3_13_on_arm64_with_the_same_distributions(deployable, build):
    layer = deployable / "CommonLayer" / "python"
    compiled = [path for path in layer.rglob("*.so")]
    assert compiled, "the layer has compiled dependencies (pydantic-core, cryptography, ...)"
    for module in compiled:
        header = module.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", module
        assert int.from_bytes(header[18:20], "little") == AARCH64, f"{module.relative_to(layer)} is not aarch64"
        assert "x86_64" not in module.name and ("cpython-313" in module.name or "abi3" in module.name
                                                or ".cpython" not in module.name), module.name
    assert distributions(layer) == distributions(build / "CommonLayer" / "python"), \
        "the x86_64 build the import checks use holds other distributions than the deployable one"


def test_every_function_imports_from_the_built_layer_alone(build, cloud):
    layer = build / "CommonLayer" / "python"
    assert (layer / "agenthq" / "__init__.py").exists()
    assert not list(layer.glob("moto*")) and not list(layer.glob("samcli*")), "dev tools leaked into the layer"
    template = load_template()
    health_event = (ROOT / "events" / "health" / "get_health.json").read_text()
    for spec in functions(template, Resolver(template, LocalStack())).values():
        code = build / spec.logical_id
        assert (code / "app.py").exists(), spec.logical_id
        event = health_event if spec.logical_id == "HealthFunction" else ""
        script = CHECK.format(layer=str(layer), code=str(code), event=event,
                              allow_sdk=spec.logical_id == "RunStepsFunction")
        # -S: no site-packages at all — only the standard library, the layer and the function.
        env = {**cloud.environment, "PATH": os.environ["PATH"], "POWERTOOLS_TRACE_DISABLED": "true",
               "AWS_ENDPOINT_URL_SFN": "http://127.0.0.1:9"}  # no moto in this process: refused at once
        result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env,
                                timeout=120)
        assert result.returncode == 0, f"{spec.logical_id}: {result.stderr[-3000:]}"
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        if event:  # the whole stack from the layer: FastAPI, Mangum, PynamoDB to DynamoDB Local, boto3
            assert outcome["status"] in (200, 503), outcome
            assert json.loads(outcome["body"])["checks"]["dynamodb"] == "ok", outcome


def test_with_a_sentry_dsn_the_functions_start_from_the_built_layer(build, cloud):
    """The SentryDsn parameter must not break a cold start: sentry-sdk is in the layer."""
    layer = build / "CommonLayer" / "python"
    script = (f"import sys; sys.path[:0] = [{str(layer)!r}, {str(build / 'HealthFunction')!r}]\n"
              "import app, sentry_sdk\n"
              "print(sentry_sdk.get_client().is_active(), sentry_sdk.__file__.startswith(sys.path[0]))")
    env = {**cloud.environment, "PATH": os.environ["PATH"], "POWERTOOLS_TRACE_DISABLED": "true",
           "SENTRY_DSN": "http://public@127.0.0.1:9/1"}  # nothing is sent: no error happens
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "True"]
