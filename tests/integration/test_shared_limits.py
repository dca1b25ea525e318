"""Budgets several processes share through Redis (db 3 of the local server, keys of this test
only): the pool's daily cap per member holds across processes, and shared rate budgets book
distinct slots whoever asks."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator

import pytest

from bot.access.rates import RateLimits
from bot.credits import CreditPolicy, CreditService
from bot.errors import TooFast
from bot.minitoolai.prices import PriceTable
from bot.ports import Account, Actor, Place, Store
from storage import open_store
from storage.redis import RedisLimits, open_limits

REDIS_URL = "redis://127.0.0.1:6379/3"
OWNER = Actor(Account("cli", "owner"))
GROUP = Place("telegram", "-100", "-100")
MODEL = "gpt-4o-mini"


@pytest.fixture
async def limits() -> AsyncIterator[list[RedisLimits]]:
    """Two processes' Redis clients, with a key prefix of this test's own."""
    prefix = f"test:{uuid.uuid4().hex}:"
    opened = [await open_limits(REDIS_URL, prefix) for _ in range(2)]
    try:
        yield opened
    finally:
        client = opened[0]._client
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        for each in opened:
            await each.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_pools_daily_cap_holds_across_processes(
    database_url: str, limits: list[RedisLimits]
) -> None:
    """Ten members each ask twice at the same moment, once through each of two processes, with a
    daily cap that covers one request: exactly one of each pair is paid by the pool."""
    prices = PriceTable()
    worst = prices.chat_worst_case(MODEL, 100, 1000)
    stores: list[Store] = [await open_store(database_url) for _ in range(2)]
    try:
        services = [
            CreditService(
                store,
                prices,
                CreditPolicy(starting_grant=10 * worst, admin_ids=frozenset({"cli:owner"})),
                shared_lock=shared.lock,
            )
            for store, shared in zip(stores, limits, strict=True)
        ]
        await services[0].fund_pool(OWNER, GROUP, 100 * worst)
        await services[0].set_pool_cap(OWNER, GROUP, worst)
        members = [Account("telegram", str(1000 + i)) for i in range(10)]

        holds = await asyncio.gather(
            *(
                service.reserve_chat(
                    member, GROUP, model=MODEL, prompt_tokens=100, max_completion_tokens=1000
                )
                for member in members
                for service in services
            )
        )
    finally:
        for store in stores:
            await store.close()

    from_pool = [hold.spender for hold in holds if hold.account.is_pool]
    assert sorted(from_pool, key=str) == sorted(members, key=str), "one pool-paid request per member"


async def test_shared_budgets_book_distinct_slots_whoever_asks(limits: list[RedisLimits]) -> None:
    """Two processes booking one budget: every booking gets its own slot, an interval apart (less
    the moments between the bookings themselves; nothing is waited here)."""
    waits = sorted(await asyncio.gather(*(limits[i % 2].reserve([("chat:1", 5.0)]) for i in range(6))))

    assert 0.0 == waits[0]
    assert all(4.0 < later - earlier <= 5.0 for earlier, later in itertools.pairwise(waits))


async def test_member_rate_limits_count_every_processs_requests_through_redis(
    limits: list[RedisLimits],
) -> None:
    """USER_MESSAGES_PER_MINUTE=2 with REDIS_URL: two processes' limiters share one window, so the
    member's third request is refused whichever process receives it."""
    processes = [RateLimits(messages_per_minute=2, storage=each.member_rates()) for each in limits]
    alice, bob = Account("telegram", "1"), Account("telegram", "2")

    await processes[0].check_chat(alice)
    await processes[1].check_chat(alice)
    with pytest.raises(TooFast):
        await processes[0].check_chat(alice)
    await processes[1].check_chat(bob)  # another member's window is their own
