"""Credits through the chat service on real stores: concurrent reservations and crash recovery.

Runs on SQLite and (with TEST_DATABASE_URL) PostgreSQL, with the real MiniToolAI client against
the fake server. A "crash" is a store that stops working right after the usage chunk is recorded;
the next start is a new store and a new CreditService over the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest

from bot.chat.tokens import REPLY_PRIMING, TokenCounter
from bot.credits import CreditPolicy, CreditService
from bot.errors import InsufficientCredits, StorageError
from bot.minitoolai.types import Usage
from bot.ports import Place, Store
from storage import open_store
from tests.fakes.minitoolai import ChatScript
from tests.integration.test_conversations import (
    ALICE,
    CHAT,
    GROUP,
    LIMITS,
    MODEL,
    PRICES,
    START,
    SignalSurface,
    WatchedFake,
    ask,
    make_world,
)

REQUESTS = 100


@pytest.fixture
async def fake() -> AsyncIterator[WatchedFake]:
    async with WatchedFake() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


class Tally:
    """Counts requests that got their hold (their answer started) and those refused, until all are in."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = 0
        self.refused = 0
        self.all_in = asyncio.Event()

    def start(self) -> None:
        self.started += 1
        self._check()

    def refuse(self) -> None:
        self.refused += 1
        self._check()

    def _check(self) -> None:
        if self.started + self.refused >= self.total:
            self.all_in.set()


async def test_simultaneous_requests_reach_the_server_only_as_often_as_the_balance_covers(
    fake: WatchedFake, store: Store, session: aiohttp.ClientSession
) -> None:
    """100 requests at once from a user who can afford 3 worst cases: exactly 3 go upstream."""
    text = "Please answer this question"
    estimate = TokenCounter().count_message(text) + REPLY_PRIMING
    worst = PRICES.chat_worst_case(MODEL, estimate, LIMITS.max_completion_tokens)
    w = make_world(fake, store, session, starting_grant=4 * worst - 1)
    gate = asyncio.Event()
    for _ in range(3):
        fake.chat_scripts.append(ChatScript(tokens=["Sure."], wait_event=gate))
    tally = Tally(REQUESTS)

    async def one(i: int) -> int:
        # A community each: no per-pool lock in the service serialises them; only the store can.
        place = Place("telegram", f"-{1000 + i}", "1")
        try:
            result = await ask(w.chat, text, place=place, surface=SignalSurface(on_typing=tally.start))
        except InsufficientCredits:
            tally.refuse()
            return 0
        return result.charged

    tasks = [asyncio.create_task(one(i)) for i in range(REQUESTS)]
    await tally.all_in.wait()
    assert (3, REQUESTS - 3) == (tally.started, tally.refused)
    gate.set()
    charged = await asyncio.gather(*tasks)

    assert 3 == len(fake.requests_to(CHAT))
    assert 3 == sum(1 for c in charged if c > 0)
    assert 4 * worst - 1 - sum(charged) == await store.balance(ALICE)
    assert [] == await store.open_reservations()


class DyingStore:
    """A real store that stops answering the moment the usage chunk has been recorded: a crash."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.dead = False

    async def annotate_reservation(self, reservation_id: str, meta: Any) -> None:
        await self._inner.annotate_reservation(reservation_id, meta)
        self.dead = "usage" in meta

    def __getattr__(self, name: str) -> Any:
        if self.dead:
            raise StorageError("the process died")
        return getattr(self._inner, name)


async def test_a_crash_after_the_usage_chunk_settles_exactly_at_the_next_start(
    fake: WatchedFake, database_url: str, session: aiohttp.ClientSession
) -> None:
    """The open hold of a crashed answer is settled at the next start to the micro-dollar of its usage."""
    usage = Usage(prompt_tokens=9, completion_tokens=151)
    fake.chat_scripts.append(ChatScript(tokens=["An ", "answer"], usage=usage))
    first_run = await open_store(database_url)
    try:
        w = make_world(fake, cast(Store, DyingStore(first_run)), session)
        with pytest.raises(StorageError):
            await ask(w.chat, "Hello")
        [left_open] = await first_run.open_reservations()
        assert 9 == left_open.meta["usage"]["prompt_tokens"]
        held = left_open.amount
    finally:
        await first_run.close()

    next_run = await open_store(database_url)
    try:
        credits = CreditService(next_run, PRICES, CreditPolicy(starting_grant=START))
        report = await credits.recover()
        exact = PRICES.chat_cost(MODEL, usage)
        assert 92 == exact < held  # 9 x $0.15/M + 151 x $0.60/M = $0.00009195, rounded up once
        assert (1, 0, exact) == (report.settled, report.released, report.charged)
        assert START - exact == await next_run.balance(ALICE)
        assert [] == await next_run.open_reservations()
        assert 0 == (await credits.recover()).settled  # a second start finds nothing to do
    finally:
        await next_run.close()


async def test_a_hold_left_open_without_usage_is_given_back_at_the_next_start(
    database_url: str,
) -> None:
    """A reservation with no recorded usage (the crash came before the stream ended) is released."""
    first_run = await open_store(database_url)
    try:
        credits = CreditService(first_run, PRICES, CreditPolicy(starting_grant=START))
        hold = await credits.reserve_chat(
            ALICE, GROUP, model=MODEL, prompt_tokens=500, max_completion_tokens=1000
        )
        assert START - hold.amount == await first_run.balance(ALICE)
    finally:
        await first_run.close()

    next_run = await open_store(database_url)
    try:
        report = await CreditService(next_run, PRICES, CreditPolicy(starting_grant=START)).recover()
        assert (0, 1) == (report.settled, report.released)
        assert START == await next_run.balance(ALICE)
    finally:
        await next_run.close()


async def test_a_recorded_usage_chunk_settles_exactly_through_the_public_api(database_url: str) -> None:
    """reserve + note_usage, then a new service over the same database: start minus the exact cost."""
    usage = Usage(prompt_tokens=10_001, completion_tokens=3, cached_tokens=0)
    first_run = await open_store(database_url)
    try:
        credits = CreditService(first_run, PRICES, CreditPolicy(starting_grant=START))
        hold = await credits.reserve_chat(
            ALICE, None, model="gpt-4o", prompt_tokens=12_000, max_completion_tokens=1000
        )
        await credits.note_usage(hold, usage, model="gpt-4o")
    finally:
        await first_run.close()

    next_run = await open_store(database_url)
    try:
        await CreditService(next_run, PRICES, CreditPolicy(starting_grant=START)).recover()
        exact = PRICES.chat_cost("gpt-4o", usage)
        assert 25_033 == exact  # 10001 x $2.50/M + 3 x $10/M = $0.0250325, rounded up
        assert START - exact == await next_run.balance(ALICE)
    finally:
        await next_run.close()
