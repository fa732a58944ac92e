"""The local WebSocket front hands its invocations out in turns by connection: API Gateway invokes every
message's integration at once; this machine's front has a bounded number of threads, and a connection's
burst waiting for them must not hold up another connection's message (bench/live_flood.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from local.websocket import _Turns


def _messaging(turns: _Turns, order: list[str], release: asyncio.Event) -> Callable[..., Awaitable[None]]:
    """A connection's message as the front handles it: it waits for its lane's turn, is recorded in
    ``order`` when it gets it, and (``hold=True``) keeps its place until ``release`` is set."""
    async def message(lane: str, name: str, hold: bool = False) -> None:
        async with turns.turn(lane):
            order.append(name)
            if hold:
                await release.wait()
    return message


def test_a_connections_burst_waits_in_turns_with_another_connections_message():
    order: list[str] = []

    async def main() -> None:
        turns = _Turns(1)
        release = asyncio.Event()
        message = _messaging(turns, order, release)

        first = asyncio.create_task(message("flood", "flood-0", hold=True))
        await asyncio.sleep(0)
        burst = [asyncio.create_task(message("flood", f"flood-{i}")) for i in range(1, 6)]
        await asyncio.sleep(0)
        other = asyncio.create_task(message("other", "other"))
        await asyncio.sleep(0)
        assert order == ["flood-0"], "one place: the rest wait"
        release.set()
        await asyncio.gather(first, *burst, other)
        assert turns.free == 1 and not turns.waiting, "every place given back"

    asyncio.run(main())
    # first come first served would put "other" last; in turns it comes right after the flood's next one
    assert order == ["flood-0", "flood-1", "other", "flood-2", "flood-3", "flood-4", "flood-5"]


def test_a_waiter_cancelled_after_it_was_handed_a_place_hands_it_on():
    async def main() -> list[str]:
        turns = _Turns(1)
        order: list[str] = []
        release = asyncio.Event()
        message = _messaging(turns, order, release)

        holder = asyncio.create_task(message("a", "a", hold=True))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(message("b", "b"))
        waiting = asyncio.create_task(message("c", "c"))
        await asyncio.sleep(0)
        release.set()
        while "b" in turns.waiting:  # until "a" is done and has handed its place to "b"
            await asyncio.sleep(0)
        assert order == ["a"]
        doomed.cancel()  # "b" is cancelled before it runs: it hands the place on to "c"
        await asyncio.gather(holder, doomed, waiting, return_exceptions=True)
        assert turns.free == 1 and not turns.waiting
        return order

    assert asyncio.run(main()) == ["a", "c"]
