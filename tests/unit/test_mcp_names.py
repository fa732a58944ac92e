"""What an MCP server may send before a model sees it (agenthq.mcp.names), and the
connector's failure messages (never a header value)."""

from __future__ import annotations

import pytest

from agenthq.mcp.connector import CallOutcome, describe, result_text, scrub
from agenthq.mcp.names import (
    MAX_SCHEMA_BYTES,
    MAX_TOOLS,
    RemoteTool,
    check_tools,
    split,
    tool_name,
)
from agenthq.outbound import OutboundRefused

OBJECT = {"type": "object", "properties": {"q": {"type": "string"}}}


def test_a_tool_name_splits_back_into_its_server_and_tool():
    assert tool_name("tickets", "search") == "mcp__tickets__search"
    assert split("mcp__tickets__search") == ("tickets", "search")
    assert split("mcp__tickets__a__b") == ("tickets", "a__b")  # server names have no underscore
    for name in ("calculator", "mcp__", "mcp__tickets", "mcp__tickets__", "mcp__Bad__x", "mcp__a_b__x"):
        assert split(name) is None, name


def test_good_tools_are_kept_in_order_with_descriptions_cut():
    checked = check_tools("srv", [RemoteTool("search", "Find " + "x" * 5000, OBJECT), RemoteTool("get-1", "", OBJECT)])
    assert [t["name"] for t in checked.tools] == ["search", "get-1"]
    assert len(checked.tools[0]["description"]) == 1024
    assert checked.skipped == [] and checked.skipped_count == 0


@pytest.mark.parametrize(("tool", "why"), [
    (RemoteTool("has space", "", OBJECT), "not a valid tool name"),
    (RemoteTool("dot.name", "", OBJECT), "not a valid tool name"),
    (RemoteTool("x" * 60, "", OBJECT), "not a valid tool name"),  # past 64 with the prefix
    (RemoteTool("", "", OBJECT), "not a valid tool name"),
    (RemoteTool("arr", "", {"type": "array"}), "not a JSON object schema"),
    (RemoteTool("big", "", {"type": "object", "description": "y" * MAX_SCHEMA_BYTES}), "larger than"),
])
def test_unsafe_tools_are_left_out_and_said_why(tool, why):
    checked = check_tools("srv", [tool, RemoteTool("ok", "fine", OBJECT)])
    assert [t["name"] for t in checked.tools] == ["ok"]
    assert checked.skipped_count == 1 and why in checked.skipped[0]["reason"]


def test_a_list_is_bounded_and_duplicates_are_left_out():
    tools = [RemoteTool(f"t{i}", "", OBJECT) for i in range(MAX_TOOLS + 7)] + [RemoteTool("t0", "", OBJECT)]
    checked = check_tools("srv", tools)
    assert len(checked.tools) == MAX_TOOLS
    assert checked.skipped_count == 8 and len(checked.skipped) == 8
    assert checked.skipped[-1] == {"name": "t0", "reason": "its name is listed twice"}


def test_failure_messages_never_carry_a_header_value():
    headers = {"Authorization": "Bearer s3cret-token", "X-Key": "k-123456"}
    assert scrub("got Bearer s3cret-token and k-123456", headers) == "got [redacted] and [redacted]"
    refused = ExceptionGroup("task group", [OutboundRefused("address", "10.0.0.1 is private")])
    assert describe(refused, headers) == "The MCP server was not reached: 10.0.0.1 is private"
    assert "s3cret" not in describe(RuntimeError("Bearer s3cret-token"), headers)
    assert describe(TimeoutError(), headers) == "The MCP server did not answer in time."


def test_a_result_is_its_text_blocks_and_names_the_others():
    class Block:
        def __init__(self, type_: str, text: str = "") -> None:
            self.type, self.text = type_, text

    class Result:
        content = [Block("text", "one"), Block("image"), Block("text", "two")]
        structured_content = None
        is_error = False

    assert result_text(Result()) == "one\n[image content omitted]\ntwo"
    assert CallOutcome("x").is_error is False


def test_a_url_the_resolver_cannot_encode_is_refused_not_a_crash():
    from agenthq.mcp.connector import SdkConnector
    from agenthq.outbound import OutboundPolicy

    connector = SdkConnector(OutboundPolicy(), timeout_seconds=1, max_result_chars=10)
    assert connector.refusal("https://" + "0" * 3000) == "the URL's host is not a valid host name"
    assert "private" in connector.refusal("https://10.0.0.1/mcp")
