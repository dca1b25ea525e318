"""adapters.telegram.pacing.BotWideLimiter: Telegram's bot-wide messages-per-second, as a sliding window."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from adapters.telegram.pacing import BotWideLimiter

WINDOW = 0.05  # one "second", scaled
LIMIT = 5


async def _run(
    limiter: BotWideLimiter, endpoint: str, log: list[tuple[str, float, float]], hold: float
) -> None:
    async def call() -> bool:
        started = time.monotonic()
        await asyncio.sleep(hold)  # the request's round trip
        log.append((endpoint, started, time.monotonic()))
        return True

    await limiter.process_request(call, (), {}, endpoint, {"chat_id": 1}, None)


async def test_no_window_ever_holds_more_requests_than_the_limit() -> None:
    """Counting each request from its start to one window after its answer, never more than LIMIT overlap."""
    limiter = BotWideLimiter(scale=WINDOW, per_second=LIMIT)
    log: list[tuple[str, float, float]] = []

    await asyncio.gather(*(_run(limiter, "sendMessage", log, hold=0.002 * (i % 3)) for i in range(40)))

    assert 40 == len(log)
    for _, start, _ in log:
        occupying = [1 for _, s, e in log if s <= start and e + WINDOW > start]
        assert len(occupying) <= LIMIT


async def test_drafts_and_chat_actions_are_not_held_back_by_waiting_messages() -> None:
    """A draft goes at once while a message waits for its place: drafts post no message."""
    limiter = BotWideLimiter(scale=10.0, per_second=LIMIT)  # messages two seconds apart
    log: list[tuple[str, float, float]] = []
    await _run(limiter, "sendMessage", log, hold=0)
    waiting: asyncio.Task[Any] = asyncio.create_task(_run(limiter, "sendMessage", log, hold=0))

    await _run(limiter, "sendMessageDraft", log, hold=0)
    await _run(limiter, "sendChatAction", log, hold=0)

    assert ["sendMessage", "sendMessageDraft", "sendChatAction"] == [entry[0] for entry in log]
    assert not waiting.done()
    waiting.cancel()
    await limiter.shutdown()
