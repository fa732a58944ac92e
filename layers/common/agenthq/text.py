"""Text helpers shared by the domain."""

from __future__ import annotations

import unicodedata

#: A JSON Schema / pydantic pattern (search semantics): at least one character that is not a space.
NOT_BLANK = r"\S"


def not_blank(value: str) -> str:
    """``value`` as it is; ``ValueError`` (a 400 at the edge) if it is only white space."""
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def clip(text: str, limit: int) -> str:
    """``text`` cut to its first ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [truncated {len(text) - limit} chars]"


def display_name(value: str, max_chars: int = 100) -> str:
    """A name people give something (a workspace, an agent, an API key), as
    stored: NFC-normalized and stripped. Raises ``ValueError`` (a 400 at the
    edge) for a blank name, one too long, or one with control or invisible
    format characters (NUL, line breaks, zero-width spaces …)."""
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be blank")
    if len(value) > max_chars:
        raise ValueError(f"must be at most {max_chars} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("must not contain control or invisible format characters")
    return value
