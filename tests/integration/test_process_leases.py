"""Process leases, on both backends: holds and image jobs belong to the process that made them,
and another process takes them over only once that process's lease is gone, never twice.

Two stores over one database stand for two processes (on SQLite too: the store itself does not
take the file's process lock; ``python -m bot`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.ports import Account, ConversationKey, ImageJob, Place, Store
from storage import open_store

ALICE = Account("telegram", "alice")
PLACE = Place("telegram", "100", "100")
TTL = 60.0

Opener = Callable[[str], Awaitable[Store]]


@pytest.fixture
async def processes(database_url: str) -> AsyncIterator[Opener]:
    """Open stores named as processes (registered with a live lease); all closed at the end."""
    opened: list[Store] = []

    async def open_process(name: str) -> Store:
        store = await open_store(database_url, process_id=name)
        opened.append(store)
        await store.register_process(ttl=TTL, host="test", pid=len(opened))
        return store

    try:
        yield open_process
    finally:
        for store in opened:
            await store.close()


async def hold(store: Store, rid: str, amount: int = 10) -> None:
    await store.open_account(ALICE, starting_grant=1_000, reason="welcome")
    assert await store.reserve(rid, ALICE, amount, purpose="chat", reason="ask")


def job(job_id: str, *, platform: str = "telegram") -> ImageJob:
    return ImageJob(
        id=job_id,
        requester=ALICE,
        place=dataclasses.replace(PLACE, platform=platform),
        params={"model": "dreamshaper", "prompt": "a fox"},
        reservation_id=f"image:{job_id}",
    )


async def test_a_live_process_keeps_its_holds_when_another_starts(processes: Opener) -> None:
    """The regression: a process starting while another streams takes none of its holds."""
    first = await processes("first")
    await hold(first, "answer-1")
    second = await processes("second")

    assert [] == await second.claim_reservations()
    reservation = await first.get_reservation("answer-1")
    assert reservation is not None and "open" == reservation.state


async def test_holds_of_a_process_whose_lease_expired_are_taken_over_once(processes: Opener) -> None:
    """An expired lease: the holds go to the one process that claims first, none to the next."""
    dead = await processes("dead")
    await hold(dead, "answer-1")
    await hold(dead, "answer-2")
    await dead.register_process(ttl=0, host="test", pid=1)  # a lease that has just run out
    taker = await processes("taker")
    late = await processes("late")

    taken = await taker.claim_reservations()

    assert ["answer-1", "answer-2"] == sorted(r.id for r in taken)
    assert [] == await late.claim_reservations()
    assert [] == await taker.claim_reservations(), "its own holds are not claimed again"


async def test_a_cleanly_stopped_process_leaves_its_holds_to_the_others_at_once(processes: Opener) -> None:
    stopped = await processes("stopped")
    await hold(stopped, "answer-1")
    await stopped.end_lease()
    other = await processes("other")

    assert ["answer-1"] == [r.id for r in await other.claim_reservations()]


async def test_concurrent_takeovers_never_claim_the_same_hold(processes: Opener) -> None:
    """Three processes claim 60 orphaned holds at the same moment: each hold goes to exactly one."""
    dead = await processes("dead")
    await dead.open_account(ALICE, starting_grant=1_000, reason="welcome")
    for i in range(60):
        assert await dead.reserve(f"r{i:02}", ALICE, 1, purpose="chat", reason="ask")
    await dead.end_lease()
    takers = [await processes(name) for name in ("a", "b", "c")]

    results = await asyncio.gather(*(t.claim_reservations() for t in takers))

    claimed = [r.id for result in results for r in result]
    assert sorted(claimed) == [f"r{i:02}" for i in range(60)]
    assert len(set(claimed)) == len(claimed)


async def test_renewing_works_while_the_lease_lives_and_fails_once_it_lapsed(processes: Opener) -> None:
    live = await processes("live")
    assert await live.renew_lease(ttl=TTL)
    assert ["live"] == [p.id for p in await live.live_processes()]

    await live.register_process(ttl=0, host="test", pid=1)

    assert not await live.renew_lease(ttl=TTL), "a lapsed lease is not silently renewed"
    assert [] == await live.live_processes()


async def test_unfinished_jobs_are_claimed_only_from_dead_processes_with_their_holds(
    processes: Opener,
) -> None:
    """A job (and its hold) moves to the taker once its owner is gone; only the asked platforms."""
    owner = await processes("owner")
    await owner.open_account(ALICE, starting_grant=1_000, reason="welcome")
    for item in (job("j1"), job("j2", platform="discord")):
        await owner.create_job(item)
        assert item.reservation_id is not None
        assert await owner.reserve(item.reservation_id, ALICE, 5, purpose="image", reason="image")
    taker = await processes("taker")

    assert [] == await taker.claim_unfinished_jobs(["telegram", "discord"])
    assert await owner.holds_job("j1")
    assert not await taker.holds_job("j1")

    await owner.register_process(ttl=0, host="test", pid=1)
    claimed = await taker.claim_unfinished_jobs(["telegram"])

    assert ["j1"] == [j.id for j in claimed]
    assert await taker.holds_job("j1")
    assert not await owner.holds_job("j1"), "the old owner must not post it any more"
    # The job's hold went with it: no process recovering holds can release it under the job.
    assert ["image:j2"] == [r.id for r in await taker.claim_reservations()]
    assert [] == await taker.claim_unfinished_jobs(["telegram"])


async def test_finished_jobs_are_never_claimed(processes: Opener) -> None:
    owner = await processes("owner")
    await owner.create_job(job("j1"))
    await owner.save_job(dataclasses.replace(job("j1"), state="done"))
    await owner.end_lease()
    taker = await processes("taker")

    assert [] == await taker.claim_unfinished_jobs(["telegram"])


async def test_a_role_is_held_by_one_live_process_then_passes_on(processes: Opener) -> None:
    """Work done once for all (registering the webhook): one holder while it lives, then the next."""
    first = await processes("first")
    second = await processes("second")

    assert await first.claim_role("telegram:set-webhook")
    assert not await second.claim_role("telegram:set-webhook")
    assert await first.claim_role("telegram:set-webhook"), "the holder keeps it"

    await first.end_lease()

    assert await second.claim_role("telegram:set-webhook")
    assert not await first.claim_role("telegram:set-webhook")


async def test_one_process_at_a_time_answers_in_a_conversation(processes: Opener) -> None:
    """The answer row: one live holder per conversation; the next once it ends or its holder dies."""
    key = ConversationKey("telegram", "100", "100")
    other_key = ConversationKey("telegram", "100", "100", owner="bob")
    first = await processes("first")
    second = await processes("second")

    assert await first.take_answer(key)
    assert await first.take_answer(key), "a row its holder failed to delete never locks it out"
    assert not await second.take_answer(key)
    assert await second.take_answer(other_key), "another conversation of the place is free"
    assert ["first", "second"] == await first.answering_processes(PLACE)

    await first.end_answer(key)
    assert await second.take_answer(key)
    await second.register_process(ttl=0, host="test", pid=2)  # dies while answering

    assert await first.take_answer(key)
    assert ["first"] == await first.answering_processes(PLACE)
