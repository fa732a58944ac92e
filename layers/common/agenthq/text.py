"""Text helpers shared by the domain."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """``text`` cut to its first ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [truncated {len(text) - limit} chars]"
