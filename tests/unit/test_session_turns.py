"""A session's earlier turns in a prompt, and where compaction folds them (pure parts of agenthq.runs.turns)."""

from __future__ import annotations

import json

from agenthq.runs import turns
from agenthq.runs.turns import EarlierTurns


def turn(number: int, size: int) -> tuple[int, list[dict]]:
    return number, [{"role": "user", "content": [{"type": "text", "text": f"q{number} " + "x" * size}]},
                    {"role": "assistant", "content": [{"type": "text", "text": f"a{number}"}]}]


def tokens(messages: list[dict]) -> int:
    return turns.prompt_tokens([{"type": "text", "text": "system"}], messages, [])


def test_earlier_turns_begin_with_the_summary_and_keep_each_turn_whole():
    earlier = EarlierTurns(None, [turn(1, 10), turn(2, 10)])
    assert [m["content"][0]["text"][:2] for m in earlier.messages()] == ["q1", "a1", "q2", "a2"]
    assert [m["content"][0]["text"][:2] for m in earlier.messages(through=1)] == ["q1", "a1"]


def test_a_prompt_within_its_budget_is_not_compacted():
    earlier = EarlierTurns(None, [turn(1, 100), turn(2, 100)])
    assert turns.compaction_through(earlier, tokens, budget=10_000) is None
    assert turns.compaction_through(EarlierTurns(), tokens, budget=1) is None, "nothing to fold"


def test_the_oldest_turns_are_folded_and_the_newest_kept_within_half_the_budget():
    earlier = EarlierTurns(None, [turn(n, 4_000) for n in range(1, 9)])  # about 1,000 tokens a turn
    placeholder = turns.summary_messages("x" * turns.SUMMARY_MAX_TOKENS * 4)
    budget = 2 * tokens([*placeholder, *earlier.turns[6][1], *earlier.turns[7][1]])  # the summary and 2 turns: half
    through = turns.compaction_through(earlier, tokens, budget)
    assert tokens(earlier.messages()) > budget
    assert through == 6, "turns 1-6 folded, 7 and 8 kept whole"
    kept = [m for n, msgs in earlier.turns if n > through for m in msgs]
    assert tokens([*turns.summary_messages("x" * turns.SUMMARY_MAX_TOKENS * 4), *kept]) <= budget // 2


def test_the_oldest_turn_is_always_folded_even_when_one_turn_is_larger_than_the_budget():
    earlier = EarlierTurns(None, [turn(1, 40_000), turn(2, 40_000)])
    assert turns.compaction_through(earlier, tokens, budget=5_000) == 2
    single = EarlierTurns(None, [turn(1, 40_000)])
    assert turns.compaction_through(single, tokens, budget=5_000) == 1


def test_the_summary_request_asks_after_the_turns_it_folds():
    earlier = EarlierTurns(None, [turn(1, 10), turn(2, 10), turn(3, 10)])
    request = turns.summary_request(earlier, through=2)
    assert [m["role"] for m in request] == ["user", "assistant", "user", "assistant", "user"]
    assert "q3" not in json.dumps(request) and request[-1]["content"][0]["text"] == turns.SUMMARISE_ASK
