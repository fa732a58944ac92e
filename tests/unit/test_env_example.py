""".env.example lists every environment variable AgentHQ reads — no more, no fewer — with the
defaults the code has; and `make dev` reads a .env as the example says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from agenthq.settings import Settings
from local.__main__ import PASSED_TO_FUNCTIONS, load_env_file
from local.cloud import BASE_ENVIRONMENT
from local.template import ROOT, load_template

EXAMPLE = ROOT / ".env.example"
SOURCES = ["layers/common/agenthq", "local", "cli", "functions", "scripts"]
NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")

#: Listed in .env.example but read by the libraries and tools, not by AgentHQ's code.
STANDARD = {
    "ANTHROPIC_BASE_URL": "the anthropic SDK",
    "AWS_ACCESS_KEY_ID": "botocore (sam, aws, agenthq admin)",
    "AWS_SECRET_ACCESS_KEY": "botocore",
    "AWS_SESSION_TOKEN": "botocore",
    "SAM_CLI_TELEMETRY": "the SAM CLI",
}


def documented() -> dict[str, str]:
    """NAME → the value .env.example shows for it (every line commented out)."""
    found: dict[str, str] = {}
    for line in EXAMPLE.read_text().splitlines():
        if match := re.match(r"^# ([A-Z][A-Z0-9_]+)=(.*)$", line):
            assert match.group(1) not in found, f"{match.group(1)} is listed twice"
            found[match.group(1)] = match.group(2)
        else:
            assert not re.match(r"^\s*[A-Z][A-Z0-9_]*=", line), f"uncommented in the example: {line}"
    return found


def _environment_reads(tree: ast.AST) -> set[str]:
    """Names read as os.environ[...], os.environ.get/getenv/setdefault(...), env.get(...) on an
    environment mapping, and typer options' envvar=."""
    found: set[str] = set()

    def environ_like(node: ast.AST) -> bool:
        return "environ" in ast.unparse(node) or ast.unparse(node) in ("os", "env")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            first = node.args[0]
            if (node.func.attr in ("get", "getenv", "setdefault", "pop") and environ_like(node.func.value)
                    and isinstance(first, ast.Constant) and isinstance(first.value, str)):
                found.add(first.value)
        if isinstance(node, ast.Subscript) and environ_like(node.value) and isinstance(node.slice, ast.Constant):
            found.add(str(node.slice.value))
        if isinstance(node, ast.keyword) and node.arg == "envvar":
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            found |= {v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)}
    return {name for name in found if NAME.match(name)}


def read_by_the_code() -> set[str]:
    names = {field.alias for field in Settings.model_fields.values() if field.alias} | {"AWS_DEFAULT_REGION"}
    for source in SOURCES:
        for path in sorted((ROOT / source).rglob("*.py")):
            names |= _environment_reads(ast.parse(path.read_text(), filename=str(path)))
    template = load_template()  # what the deployment sets for the functions (and Powertools, Sentry read)
    names |= set(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        names |= set(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    names |= {n for n in BASE_ENVIRONMENT if n.startswith("POWERTOOLS_")} | {"AWS_ENDPOINT_URL_DYNAMODB"}
    return names | set(PASSED_TO_FUNCTIONS)


def test_the_example_lists_every_variable_the_code_reads_and_no_other():
    listed, read = set(documented()), read_by_the_code()
    assert not read - listed, f"read by the code, missing from .env.example: {sorted(read - listed)}"
    assert not listed - read - set(STANDARD), f"in .env.example, read by nothing: {sorted(listed - read - set(STANDARD))}"
    assert {"AGENTHQ_PORT", "ANTHROPIC_API_KEY", "SENTRY_DSN", "AGENTHQ_API_URL", "TABLE_NAME"} <= read, \
        "the scan finds what the code reads"


def test_the_example_shows_the_codes_defaults():
    shown = documented()
    template_sets = set(load_template()["Globals"]["Function"]["Environment"]["Variables"])
    for field in Settings.model_fields.values():
        if field.alias in template_sets or field.alias in ("TABLE_NAME", "USAGE_PLAN_IDS", "CORS_ALLOW_ORIGINS",
                                                                  "OPERATOR_PRINCIPAL_ARNS"):
            continue
        default = field.get_default(call_default_factory=True)
        assert shown[field.alias] == str(default), f"{field.alias}: the code's default is {default!r}"
    from local.__main__ import parse_args

    args = parse_args([])
    assert (shown["AGENTHQ_HOST"], shown["AGENTHQ_PORT"], shown["AGENTHQ_WS_PORT"], shown["AGENTHQ_LOG_LEVEL"]) == (
        args.host, str(args.port), str(args.ws_port), args.log_level)


def test_make_dev_reads_dot_env_and_what_is_exported_wins(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("# a comment\n\nAGENTHQ_PORT=3100\nexport AGENTHQ_WS_PORT='3101'\n"
                        'ANTHROPIC_API_KEY="sk-from-file"\nMODEL_MAX_TOKENS=1024\n')
    environ = {"ANTHROPIC_API_KEY": "sk-exported"}
    assert load_env_file(env_file, environ) == ["AGENTHQ_PORT", "AGENTHQ_WS_PORT", "MODEL_MAX_TOKENS"]
    assert environ == {"ANTHROPIC_API_KEY": "sk-exported", "AGENTHQ_PORT": "3100", "AGENTHQ_WS_PORT": "3101",
                       "MODEL_MAX_TOKENS": "1024"}
    (tmp_path / "copy").write_text(EXAMPLE.read_text())
    untouched: dict[str, str] = {}
    assert load_env_file(tmp_path / "copy", untouched) == [] and untouched == {}, "a copied example changes nothing"
    env_file.write_text("AGENTHQ_PORT 3100\n")
    with pytest.raises(SystemExit, match=r"\.env:1: expected NAME=value"):
        load_env_file(env_file, {})
