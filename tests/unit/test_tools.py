"""The tool registry: definitions, allow-lists, schema checks and the safety rails of execute()."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime

import pytest

from agenthq.tools.catalog import BUILTIN_TOOL_NAMES, pure_registry
from agenthq.tools.registry import (
    Tool,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    validate,
)
from tests.support import FixedClock

CTX = ToolContext(workspace_id="ws1", run_id="run1", agent_id="agent1", depth=0)

ECHO_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 10},
        "count": {"type": "integer", "minimum": 1, "maximum": 3},
        "mode": {"type": "string", "enum": ["loud", "quiet"]},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
    "required": ["text"],
    "additionalProperties": False,
}


def make_tool(handler, name: str = "echo", **options) -> Tool:
    return Tool(name=name, description="Test tool.", input_schema=ECHO_SCHEMA, handler=handler, **options)


def registry_with(*tools: Tool) -> ToolRegistry:
    registry = ToolRegistry()
    for tool in tools:
        registry.register(tool)
    return registry


def echo(input: dict, ctx: ToolContext) -> str:
    return input["text"] * input.get("count", 1)


# --- definitions -------------------------------------------------------------------------


def test_definition_is_the_anthropic_tool_format():
    tool = make_tool(echo)
    assert tool.definition() == {"name": "echo", "description": "Test tool.", "input_schema": ECHO_SCHEMA}


def test_definitions_follow_the_allowed_order_and_skip_unknown_names():
    registry = registry_with(make_tool(echo, "alpha"), make_tool(echo, "beta"))
    names = [d["name"] for d in registry.definitions(["beta", "nope", "alpha", "beta"])]
    assert names == ["beta", "alpha"]


def test_the_pure_registry_has_the_pure_builtins_with_object_schemas():
    registry = pure_registry()
    assert registry.names() == ["calculator", "current_time"]
    for definition in registry.definitions(BUILTIN_TOOL_NAMES):
        assert set(definition) == {"name", "description", "input_schema"}
        assert definition["input_schema"]["type"] == "object"
        assert definition["description"]


def test_builtin_names_reserve_the_stateful_tools():
    assert set(BUILTIN_TOOL_NAMES) == {
        "calculator", "current_time", "notes_read", "notes_write", "send_message", "delegate",
    }


@pytest.mark.parametrize("name", ["", "Echo", "1tool", "with-dash", "with space", "a" * 65])
def test_invalid_tool_names_are_refused(name):
    with pytest.raises(ValueError, match="invalid tool name"):
        make_tool(echo, name)


def test_tool_definition_problems_are_refused():
    with pytest.raises(ValueError, match="kind"):
        make_tool(echo, kind="magic")
    with pytest.raises(ValueError, match="type 'object'"):
        Tool(name="t", description="d", input_schema={"type": "string"}, handler=echo)
    with pytest.raises(ValueError, match="unsupported schema keywords"):
        Tool(name="t", description="d", handler=echo,
             input_schema={"type": "object", "properties": {"x": {"type": "string", "pattern": "^a"}}})


def test_registering_a_name_twice_is_refused_unless_replacing():
    registry = registry_with(make_tool(echo))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(make_tool(echo))
    registry.register(make_tool(lambda i, c: "new"), replace=True)
    assert registry.execute("echo", {"text": "x"}, CTX, ["echo"]).content == "new"


# --- execute: the happy path and results -------------------------------------------------------


def test_execute_runs_the_handler_with_input_and_context():
    seen = {}

    def handler(input, ctx):
        seen.update(input=input, ctx=ctx)
        return "ok"

    result = registry_with(make_tool(handler)).execute("echo", {"text": "hi"}, CTX, ["echo"])
    assert result == ToolResult("ok", is_error=False)
    assert seen == {"input": {"text": "hi"}, "ctx": CTX}


def test_dict_results_are_json_encoded():
    tool = make_tool(lambda i, c: {"answer": 42, "when": datetime(2026, 1, 2, tzinfo=UTC), "ü": "ß"})
    result = registry_with(tool).execute("echo", {"text": "x"}, CTX, ["echo"])
    assert result.content == '{"answer": 42, "when": "2026-01-02 00:00:00+00:00", "ü": "ß"}'
    assert not result.is_error


def test_results_over_the_limit_are_truncated_with_a_marker():
    tool = make_tool(lambda i, c: "x" * 150, max_result_chars=100)
    result = registry_with(tool).execute("echo", {"text": "x"}, CTX, ["echo"])
    assert result.content == "x" * 100 + "… [truncated 50 chars]"
    assert not result.is_error


def test_a_result_of_exactly_the_limit_is_untouched():
    tool = make_tool(lambda i, c: "x" * 100, max_result_chars=100)
    assert registry_with(tool).execute("echo", {"text": "x"}, CTX, ["echo"]).content == "x" * 100


def test_other_result_types_are_an_error():
    tool = make_tool(lambda i, c: 42)
    result = registry_with(tool).execute("echo", {"text": "x"}, CTX, ["echo"])
    assert result.is_error and "not text or a JSON object" in result.content


def test_to_block_is_an_anthropic_tool_result():
    assert ToolResult("boom", is_error=True).to_block("toolu_1") == {
        "type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True,
    }
    assert ToolResult("42").to_block("toolu_2")["is_error"] is False


# --- execute: refusals --------------------------------------------------------------------------


def test_unknown_tool_is_an_error_result():
    result = registry_with(make_tool(echo)).execute("rm_rf", {}, CTX, ["rm_rf", "echo"])
    assert result.is_error
    assert result.content == "Unknown tool 'rm_rf'."


def test_a_tool_outside_the_allow_list_is_refused_and_not_run():
    calls = []
    tool = make_tool(lambda i, c: calls.append(i) or "ran")
    result = registry_with(tool).execute("echo", {"text": "x"}, CTX, ["calculator"])
    assert result.is_error
    assert result.content == "Tool 'echo' is not allowed for this agent."
    assert calls == []


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({}, "text: is required"),
        ({"text": 5}, "text: must be a string"),
        ({"text": ""}, "text: must be at least 1 characters"),
        ({"text": "x" * 11}, "text: must be at most 10 characters"),
        ({"text": "x", "count": "2"}, "count: must be an integer"),
        ({"text": "x", "count": True}, "count: must be an integer"),
        ({"text": "x", "count": 1.5}, "count: must be an integer"),
        ({"text": "x", "count": 0}, "count: must be >= 1"),
        ({"text": "x", "count": 4}, "count: must be <= 3"),
        ({"text": "x", "mode": "shout"}, 'mode: must be one of "loud", "quiet"'),
        ({"text": "x", "ratio": "1"}, "ratio: must be a number"),
        ({"text": "x", "flag": 1}, "flag: must be a boolean"),
        ({"text": "x", "tags": "a"}, "tags: must be an array"),
        ({"text": "x", "tags": ["a", "b", "c"]}, "tags: must have at most 2 items"),
        ({"text": "x", "tags": ["a", 2]}, "tags[1]: must be a string"),
        ({"text": "x", "extra": 1}, "extra: is not an allowed field"),
    ],
)
def test_schema_violations_name_the_field_and_do_not_run_the_handler(tool_input, message):
    calls = []
    tool = make_tool(lambda i, c: calls.append(i) or "ran")
    result = registry_with(tool).execute("echo", tool_input, CTX, ["echo"])
    assert result.is_error
    assert result.content == f"Invalid input: {message}"
    assert calls == []


def test_input_that_is_not_an_object_is_refused():
    result = registry_with(make_tool(echo)).execute("echo", ["text"], CTX, ["echo"])
    assert result.is_error and "must be a JSON object" in result.content


def test_validate_reports_every_problem():
    assert validate(ECHO_SCHEMA, {"count": 9, "extra": 1}) == [
        "text: is required", "count: must be <= 3", "extra: is not an allowed field",
    ]
    assert validate(ECHO_SCHEMA, {"text": "ok", "count": 2, "mode": "loud", "tags": ["a"]}) == []


def test_nested_objects_report_dotted_paths():
    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}},
                                                     "required": ["c"]}}}
    assert validate(schema, {"a": {"b": "x"}}) == ["a.c: is required", "a.b: must be an integer"]


# --- execute: failing handlers -----------------------------------------------------------------


def test_tool_error_message_goes_back_to_the_model():
    def handler(input, ctx):
        raise ToolError("note 'plans' does not exist")

    result = registry_with(make_tool(handler)).execute("echo", {"text": "x"}, CTX, ["echo"])
    assert result == ToolResult("note 'plans' does not exist", is_error=True)


def test_unexpected_exceptions_become_a_short_message_without_traceback():
    def handler(input, ctx):
        return {"a": 1}["missing"]

    result = registry_with(make_tool(handler)).execute("echo", {"text": "x"}, CTX, ["echo"])
    assert result.is_error
    assert result.content == "KeyError: 'missing'"
    assert "Traceback" not in result.content and "line " not in result.content


def test_a_slow_handler_times_out_without_blocking_the_caller():
    release = threading.Event()

    def slow(input, ctx):
        release.wait(2)  # sleeps up to 2 s; released once the test is done
        return "too late"

    registry = registry_with(make_tool(slow, timeout_seconds=0.2))
    started = time.monotonic()
    try:
        result = registry.execute("echo", {"text": "x"}, CTX, ["echo"])
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert result == ToolResult("Tool 'echo' timed out after 0.2s.", is_error=True)
    assert elapsed < 1.5


# --- the context ------------------------------------------------------------------------------


def test_context_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CTX.workspace_id = "other"  # type: ignore[misc]


def test_current_time_uses_the_injected_clock():
    ctx = dataclasses.replace(CTX, clock=FixedClock(datetime(2026, 3, 1, 23, 30, 15, 999, tzinfo=UTC)))
    registry = pure_registry()
    result = registry.execute("current_time", {"timezone": "+02:00"}, ctx, ["current_time"])
    assert not result.is_error
    assert result.content == (
        '{"utc": "2026-03-01T23:30:15Z", "local": "2026-03-02T01:30:15+02:00", '
        '"timezone": "+02:00", "unix": 1772407815, "weekday": "Monday"}'
    )


def test_current_time_defaults_to_utc_and_the_real_clock():
    result = pure_registry().execute("current_time", {}, CTX, ["current_time"])
    assert not result.is_error
    assert '"timezone": "UTC"' in result.content
    assert '"local": "' in result.content and 'Z"' in result.content


@pytest.mark.parametrize("zone", ["Europe/Paris", "+2", "+15:00", "+02:60", "02:00"])
def test_current_time_refuses_anything_but_fixed_offsets(zone):
    result = pure_registry().execute("current_time", {"timezone": zone}, CTX, ["current_time"])
    assert result.is_error
    assert "timezone" in result.content
