"""The Discord gate follows real REST requests through aiohttp's trace, against the fake Discord.

A request made with a turn (``making``) is answered in the trace before the call returns; one made
without a turn still counts against the bot-wide budget; interaction callbacks do not count.
The gate's window is a minute here, so nothing depends on how fast the machine is.
"""

from __future__ import annotations

import aiohttp

from adapters.discord.pacing import GlobalGate, making
from bot.display.streaming import Urgency
from tests.fakes.discord import FakeDiscord


async def test_the_trace_marks_answers_and_counts_requests_made_without_a_turn() -> None:
    gate = GlobalGate(per_window=2, window=60.0)
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
            assert gate.try_now(share=1.0) is not None  # this turn makes 2 of 2: ours before, and this one

            # A request nobody asked the gate for still counts: the budget is full now.
            async with http.get(f"{dc.api_base}/users/@me") as response:
                assert response.status == 200
            assert gate.try_now(share=1.0) is None
