"""The five built-in personalities are complete, and their tools and models are known."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agenthq.errors import NotFound
from agenthq.personalities import PERSONALITIES, Personality, get_personality, list_personalities
from agenthq.pricing import KNOWN_MODELS
from agenthq.tools.catalog import BUILTIN_TOOL_NAMES

EXPECTED_TOOLS = {
    "coordinator": ("delegate", "send_message", "notes_read", "notes_write", "current_time"),
    "architect": ("notes_read", "notes_write", "send_message", "calculator"),
    "frontend_developer": ("notes_read", "notes_write", "send_message"),
    "sre": ("current_time", "calculator", "notes_read", "notes_write", "send_message"),
    "data_engineer": ("calculator", "notes_read", "notes_write", "send_message", "current_time"),
}


def test_the_five_roles_with_their_default_tools():
    assert {pid: p.default_tools for pid, p in PERSONALITIES.items()} == EXPECTED_TOOLS
    assert [p.id for p in list_personalities()] == list(EXPECTED_TOOLS)


@pytest.mark.parametrize("personality", list(PERSONALITIES.values()), ids=list(PERSONALITIES))
def test_each_personality_is_complete(personality):
    assert personality.name and personality.description
    assert set(personality.default_tools) <= set(BUILTIN_TOOL_NAMES)
    assert personality.default_model in KNOWN_MODELS
    lines = personality.system_prompt.strip().splitlines()
    assert 8 <= len(lines) <= 20
    for tool in personality.default_tools:
        assert tool in personality.system_prompt, f"{personality.id}'s prompt does not mention {tool}"
    for tool in set(BUILTIN_TOOL_NAMES) - set(personality.default_tools):
        assert tool not in personality.system_prompt, f"{personality.id}'s prompt mentions {tool} it lacks"


def test_only_the_coordinator_delegates():
    assert [p.id for p in PERSONALITIES.values() if "delegate" in p.default_tools] == ["coordinator"]


def test_get_personality():
    assert get_personality("sre").name == "SRE"
    with pytest.raises(NotFound, match="Personality 'ceo' not found"):
        get_personality("ceo")


def test_personalities_refuse_unknown_tools_and_models():
    base = get_personality("architect").model_dump()
    with pytest.raises(ValidationError, match="unknown tools"):
        Personality.model_validate({**base, "default_tools": ("calculator", "shell")})
    with pytest.raises(ValidationError, match="unknown model"):
        Personality.model_validate({**base, "default_model": "claude-2"})


def test_personalities_are_frozen():
    with pytest.raises(ValidationError):
        get_personality("sre").default_model = "claude-haiku-5-5"  # type: ignore[misc]
