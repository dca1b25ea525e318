"""The in-memory Store keeps the promises of the bot.ports docstrings.

Written against a ``store`` fixture so the same module can later run on the SQL backends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import InsufficientCredits, StorageError
from bot.ports import Account, ChannelSettings, ConversationKey, ImageJob, Place, StoredImage, Turn
from tests.fakes.memory_store import MemoryStore
from tests.fakes.wall_clock import ManualClock

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = ConversationKey("telegram", "-100", "", "")
ALICE = Account("telegram", "1")
POOL = Account.pool("telegram", "-100")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def store(clock: ManualClock) -> AsyncIterator[MemoryStore]:
    memory = MemoryStore(clock=clock)
    yield memory
    await memory.close()


def turns(*tokens: int) -> list[Turn]:
    return [Turn("user" if i % 2 == 0 else "assistant", f"t{i}", n) for i, n in enumerate(tokens)]


# ---------------------------------------------------------------- conversations


async def test_append_turns_returns_increasing_ids_and_stamps_utc(store: MemoryStore) -> None:
    """Ids grow in order and created_at is filled with an aware UTC time."""
    ids = await store.append_turns(KEY, turns(1, 2, 3))
    assert ids == sorted(ids) and len(set(ids)) == 3
    loaded = await store.load_context(KEY, 100)
    assert [START] * 3 == [t.created_at for t in loaded]


@pytest.mark.parametrize(
    ("budget", "max_turns", "expected"),
    [
        (10, 500, ["t2", "t3"]),
        (9, 500, ["t3"]),
        (0, 500, []),
        (100, 2, ["t2", "t3"]),
        (25, 500, ["t0", "t1", "t2", "t3"]),
    ],
)
async def test_load_context_takes_the_newest_turns_within_budget_oldest_first(
    store: MemoryStore, budget: int, max_turns: int, expected: list[str]
) -> None:
    """The newest turns whose tokens sum to at most the budget (and at most max_turns), oldest first."""
    await store.append_turns(KEY, turns(5, 10, 3, 7))
    assert expected == [t.text for t in await store.load_context(KEY, budget, max_turns=max_turns)]


async def test_load_context_stops_at_the_first_turn_that_does_not_fit(store: MemoryStore) -> None:
    """An older small turn beyond a big one is not skipped into: the context stays contiguous."""
    await store.append_turns(KEY, turns(1, 100, 1))
    assert ["t2"] == [t.text for t in await store.load_context(KEY, 50)]


async def test_conversations_are_separate_per_key(store: MemoryStore) -> None:
    """A per-user key does not see the shared channel's turns."""
    await store.append_turns(KEY, turns(1))
    assert [] == await store.load_context(dataclasses.replace(KEY, owner="1"), 100)


async def test_replace_last_assistant_replaces_in_place_or_appends(store: MemoryStore) -> None:
    """Regenerate swaps the newest assistant turn; with none, the turn is appended."""
    new = Turn("assistant", "again", 4)
    first_id = await store.replace_last_assistant(KEY, new)
    ids = await store.append_turns(KEY, turns(1, 2))
    replaced = await store.replace_last_assistant(KEY, dataclasses.replace(new, text="third"))
    assert ids[1] == replaced
    assert ["again", "t0", "third"] == [t.text for t in await store.load_context(KEY, 100)]
    assert first_id < ids[0]


async def test_reset_and_prune(store: MemoryStore, clock: ManualClock) -> None:
    """reset forgets a conversation; prune drops old turns and keeps only the newest per conversation."""
    await store.append_turns(KEY, turns(1, 1))
    clock.advance(timedelta(days=2))
    await store.append_turns(KEY, turns(1, 1, 1))
    assert 2 == await store.prune(older_than=START + timedelta(days=1))
    assert 2 == await store.prune(keep_last=1)
    assert 1 == await store.reset(KEY)
    assert 0 == await store.reset(KEY)


# ---------------------------------------------------------------- settings


async def test_settings_and_meta_round_trip_as_copies(store: MemoryStore) -> None:
    """Stored settings are a copy: changing the caller's dict changes nothing stored."""
    place = Place("discord", "1", "2")
    assert await store.get_settings(place) is None
    extra = {"pool_daily_cap": 5}
    await store.put_settings(place, ChannelSettings(model="gpt-4o", extra=extra))
    extra["pool_daily_cap"] = 6
    assert ChannelSettings(model="gpt-4o", extra={"pool_daily_cap": 5}) == await store.get_settings(place)
    await store.set_meta("k", "v")
    assert ("v", None) == (await store.get_meta("k"), await store.get_meta("other"))


async def test_values_that_json_cannot_hold_are_refused(store: MemoryStore) -> None:
    """Meta must be JSON-serialisable, as in the SQL backends."""
    with pytest.raises(TypeError):
        await store.put_settings(Place("discord", "1"), ChannelSettings(extra={"x": object()}))


# ---------------------------------------------------------------- ledger


async def test_open_account_grants_once(store: MemoryStore) -> None:
    """An account opens once with its starting grant; opening again returns the balance."""
    assert await store.balance(ALICE) is None
    assert 100 == await store.open_account(ALICE, starting_grant=100, reason="start")
    assert 100 == await store.open_account(ALICE, starting_grant=900, reason="start")
    assert [100] == [e.amount for e in await store.entries(ALICE)]


async def test_apply_is_idempotent_and_never_overdraws(store: MemoryStore) -> None:
    """A used key is a no-op (None); a change below zero raises and changes nothing."""
    await store.open_account(ALICE, starting_grant=100, reason="start")
    entry = await store.apply(ALICE, 50, kind="grant", reason="g", idempotency_key="k1")
    assert entry is not None and 150 == entry.balance_after
    assert await store.apply(ALICE, 50, kind="grant", reason="g", idempotency_key="k1") is None
    with pytest.raises(InsufficientCredits):
        await store.apply(ALICE, -151, kind="adjust", reason="t", idempotency_key="k2")
    assert 150 == await store.balance(ALICE)
    assert await store.apply(ALICE, -150, kind="adjust", reason="t", idempotency_key="k2") is not None


async def test_top_up_fills_to_the_cap_and_spends_its_key(store: MemoryStore) -> None:
    """top_up adds min(amount, cap - balance); its key is used even when nothing was added."""
    await store.open_account(ALICE, starting_grant=90, reason="start")
    assert 10 == await store.top_up(ALICE, 50, up_to=100, reason="a", idempotency_key="day1")
    assert 0 == await store.top_up(ALICE, 50, up_to=100, reason="a", idempotency_key="day2")
    await store.apply(ALICE, -100, kind="adjust", reason="t", idempotency_key="t")
    assert 0 == await store.top_up(ALICE, 50, up_to=100, reason="a", idempotency_key="day2")
    assert 50 == await store.top_up(ALICE, 50, up_to=100, reason="a", idempotency_key="day3")


async def test_reserve_settle_release_life_cycle(store: MemoryStore) -> None:
    """Reserve takes the amount; settle charges in full, over the amount from the balance as far as
    it goes; closing twice does nothing."""
    await store.open_account(ALICE, starting_grant=100, reason="start")
    assert not await store.reserve("big", ALICE, 101, purpose="chat", reason="r")
    assert await store.reserve("r1", ALICE, 60, purpose="chat", reason="r", meta={"model": "m"})
    assert await store.reserve("r1", ALICE, 60, purpose="chat", reason="r")  # same id: no-op
    assert 40 == await store.balance(ALICE)
    assert await store.settle("r1", 70, reason="s", meta={"exact": True})
    assert not await store.settle("r1", 1, reason="s")
    assert not await store.release("r1", reason="x")
    assert not await store.release("unknown", reason="x")
    held = await store.get_reservation("r1")
    assert held is not None
    assert ("settled", 70, {"model": "m", "exact": True}) == (held.state, held.charged, dict(held.meta))
    assert 30 == await store.balance(ALICE)
    assert await store.reserve("r2", ALICE, 20, purpose="chat", reason="r")
    assert await store.settle("r2", 500, reason="s")  # the balance (10) covers only part of it
    assert 30 == (await store.get_reservation("r2") or held).charged
    assert 0 == await store.balance(ALICE)
    await store.apply(ALICE, 40, kind="grant", reason="g", idempotency_key="g1")
    assert await store.reserve("r3", ALICE, 40, purpose="image", reason="r")
    assert await store.release("r3", reason="failed")
    assert 40 == await store.balance(ALICE)
    assert 40 == sum(e.amount for e in await store.entries(ALICE, limit=100))


async def test_annotate_reservation_merges_meta(store: MemoryStore) -> None:
    """annotate_reservation adds keys to a reservation's meta and keeps the others."""
    await store.open_account(ALICE, starting_grant=100, reason="start")
    await store.reserve("r1", ALICE, 10, purpose="chat", reason="r", meta={"model": "m"})
    await store.annotate_reservation("r1", {"usage": {"prompt_tokens": 1}})
    await store.annotate_reservation("missing", {"x": 1})
    held = await store.get_reservation("r1")
    assert held is not None
    assert {"model": "m", "usage": {"prompt_tokens": 1}} == dict(held.meta)
    assert ["r1"] == [r.id for r in await store.open_reservations()]


async def test_charged_between_and_settled_reservations(store: MemoryStore, clock: ManualClock) -> None:
    """Charges count in [start, end) by close time, optionally for one spender; newest first."""
    bob = Account("telegram", "2")
    await store.open_account(POOL, starting_grant=1000, reason="fund")
    for rid, spender, charged in (("a", ALICE, 10), ("b", bob, 20), ("c", ALICE, 30)):
        await store.reserve(rid, POOL, 100, purpose="chat", reason="r", spender=spender)
        clock.advance(timedelta(hours=1))
        await store.settle(rid, charged, reason="s")
    first = START + timedelta(hours=1)
    assert 60 == await store.charged_between(POOL, first, clock.now + timedelta(seconds=1))
    assert 30 == await store.charged_between(
        POOL, first + timedelta(hours=2), clock.now + timedelta(seconds=1)
    )
    assert 10 == await store.charged_between(POOL, first, clock.now, spender=ALICE)
    assert ["c", "a"] == [r.id for r in await store.settled_reservations(POOL, spender=ALICE)]
    assert ["c"] == [r.id for r in await store.settled_reservations(POOL, limit=1)]
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.charged_between(POOL, datetime(2026, 1, 1), clock.now)


async def test_entries_are_newest_first_and_filterable(store: MemoryStore) -> None:
    """entries lists newest first, honours kinds and limit."""
    await store.open_account(ALICE, starting_grant=100, reason="start")
    await store.apply(ALICE, 5, kind="adjust", reason="a", idempotency_key="a")
    await store.reserve("r", ALICE, 10, purpose="chat", reason="r")
    assert ["reserve", "adjust", "grant"] == [e.kind for e in await store.entries(ALICE)]
    assert ["adjust"] == [e.kind for e in await store.entries(ALICE, kinds=["adjust"])]
    assert 1 == len(await store.entries(ALICE, limit=1))


async def test_concurrent_reserves_never_overdraw(store: MemoryStore) -> None:
    """Fifty simultaneous reserves of 10 on a balance of 100: exactly ten fit."""
    await store.open_account(ALICE, starting_grant=100, reason="start")
    results = await asyncio.gather(
        *(store.reserve(f"r{i}", ALICE, 10, purpose="chat", reason="r") for i in range(50))
    )
    assert 10 == sum(results)
    assert 0 == await store.balance(ALICE)


# ---------------------------------------------------------------- image jobs


async def test_jobs_are_created_saved_and_listed_oldest_first(store: MemoryStore, clock: ManualClock) -> None:
    """Unfinished jobs come back oldest first; finished ones do not; save keeps created_at."""
    place = Place("telegram", "-100")
    for job_id in ("j1", "j2", "j3"):
        await store.create_job(ImageJob(job_id, ALICE, place, {"prompt": job_id}))
        clock.advance(timedelta(seconds=1))
    stored = await store.get_job("j2")
    assert stored is not None
    await store.save_job(dataclasses.replace(stored, state="done", created_at=None))
    assert ["j1", "j3"] == [j.id for j in await store.unfinished_jobs()]
    done = await store.get_job("j2")
    assert done is not None
    assert (START + timedelta(seconds=1), clock.now) == (done.created_at, done.updated_at)
    with pytest.raises(StorageError):
        await store.create_job(ImageJob("j1", ALICE, place, {}))
    with pytest.raises(StorageError):
        await store.save_job(ImageJob("nope", ALICE, place, {}))


async def test_a_closed_store_refuses_work(store: MemoryStore) -> None:
    """After close every call raises StorageError."""
    await store.close()
    with pytest.raises(StorageError):
        await store.balance(ALICE)


async def test_pictures_keep_and_load_like_the_sql_stores(store: MemoryStore) -> None:
    """keep_pictures forgets older pictures' bytes (their place stays); max_pictures loads only the
    newest bytes; stored pictures carry their content hash (as the contract tests ask of SQL)."""
    pictures = [StoredImage("image/png", f"p{n}".encode(), 2, 2) for n in range(3)]
    for n, picture in enumerate(pictures):
        await store.append_turns(KEY, [Turn("user", f"t{n}", 1, images=(picture,))], keep_pictures=2)

    kept = [t.images[0] for t in await store.load_context(KEY, 100)]
    assert [b"", b"p1", b"p2"] == [i.data for i in kept]
    assert hashlib.sha256(b"p2").hexdigest() == kept[2].digest

    newest = [t.images[0] for t in await store.load_context(KEY, 100, max_pictures=1)]
    assert [b"", b"", b"p2"] == [i.data for i in newest]
    assert (2, 2, kept[1].digest) == (newest[1].width, newest[1].height, newest[1].digest)
