"""The Discord gate follows real REST requests through aiohttp's trace, against the fake Discord.

A request made with a turn (``making``) is answered in the trace before the call returns; one made
without a turn waits for one in the trace before it leaves, and counts; interaction callbacks do
not count. The gate's clock is the test's: nothing depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio

import aiohttp

from adapters.discord.pacing import GlobalGate, making
from bot.display.streaming import Urgency
from tests.fakes.discord import FakeDiscord


class Clock:
    """The gate's time, moved by the test; the gate's sleeps last until the next move."""

    def __init__(self) -> None:
        self.now = 0.0
        self._moved = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await self._moved.wait()

    def move(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()
        self._moved = asyncio.Event()


def me_requests(dc: FakeDiscord) -> int:
    return sum(1 for r in dc.requests if r.path.endswith("/users/@me"))


async def test_the_trace_marks_answers_and_makes_requests_without_a_turn_wait_for_one() -> None:
    clock = Clock()
    gate = GlobalGate(per_window=2, window=60.0, clock=clock.time, sleep=clock.sleep)
    async with FakeDiscord() as dc:
        headers = {"Authorization": f"Bot {dc.token}"}
        config = gate.trace(aiohttp.TraceConfig())
        async with aiohttp.ClientSession(trace_configs=[config], headers=headers) as http:
            ticket = await gate.wait(Urgency.FIRST)
            with making(ticket):
                async with http.get(f"{dc.api_base}/users/@me") as response:
                    assert response.status == 200
                answered = ticket.answered_at
            assert answered is not None  # by the trace, before the request was over for us
            assert ticket.answered_at == answered

            # An interaction callback is outside the global limit: the gate does not count it.
            async with http.post(f"{dc.api_base}/interactions/1/nope/callback", json={"type": 5}):
                pass
            # A request nobody asked the gate for takes a turn of its own: 2 of 2 now.
            async with http.get(f"{dc.api_base}/users/@me") as response:
                assert response.status == 200
            assert gate.try_now(share=1.0) is None

            # The budget is full: the next one waits in the trace, unsent, until a turn frees.
            async def third() -> int:
                async with http.get(f"{dc.api_base}/users/@me") as response:
                    return response.status

            waiting = asyncio.create_task(third())
            for _ in range(10_000):  # until the task reaches the gate (no time passes)
                if gate.waiting or waiting.done():
                    break
                await asyncio.sleep(0)
            assert gate.waiting == 1
            assert me_requests(dc) == 2 and not waiting.done()

            clock.move(61.0)  # both earlier requests stop counting a window after their answers
            assert await waiting == 200
            assert me_requests(dc) == 3
