"""adapters.discord.pacing.GlobalGate: Discord's bot-wide budget, the most noticed requests first.

Virtual time (tests/fakes/virtual_time.py): a "request" holds its turn for a latency, then its
answer is marked as the REST trace marks it (``making`` around the call), so every figure is exact.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from adapters.discord.pacing import GlobalGate, Ticket, making
from bot.display.streaming import Urgency
from tests.fakes.virtual_time import VirtualTime

FIRST, FINAL, EDIT = Urgency.FIRST, Urgency.FINAL, Urgency.EDIT


def gate_in(vt: VirtualTime, per_window: int = 1, window: float = 1.0) -> GlobalGate:
    return GlobalGate(per_window, window, clock=vt.time, sleep=vt.sleep)


async def request(
    vt: VirtualTime,
    gate: GlobalGate,
    urgency: Urgency,
    log: list[tuple[str, float]],
    name: str,
    *,
    after: float = 0.0,
    latency: float = 0.0,
) -> None:
    """Ask for a turn ``after`` seconds from now; the platform answers ``latency`` after the turn."""
    await vt.sleep(after)
    ticket = await gate.wait(urgency)
    log.append((name, vt.now))
    with making(ticket):
        await vt.sleep(latency)
        ticket.answered()


async def test_waiting_turns_go_first_words_then_final_texts_then_edits() -> None:
    """One request a second; an edit, a final text and a first message wait together: the first
    message goes at once when the budget reopens, then the final text, then the edit."""
    vt = VirtualTime()
    gate = gate_in(vt)
    log: list[tuple[str, float]] = []
    start = vt.now

    async def scene() -> None:
        await request(vt, gate, EDIT, log, "busy")  # takes this second's budget
        await asyncio.gather(
            request(vt, gate, EDIT, log, "edit", after=0.1),
            request(vt, gate, FINAL, log, "final", after=0.2),
            request(vt, gate, FIRST, log, "first", after=0.3),
        )

    await vt.run(scene())

    assert [name for name, _ in log] == ["busy", "first", "final", "edit"]
    assert [at - start for _, at in log] == pytest.approx([0.0, 1.0, 2.0, 3.0])


async def test_edits_still_progress_while_first_messages_keep_coming_faster_than_the_budget() -> None:
    """Two new answers a second against a budget of one request a second: strict priority would
    never let the edit go. It waits at most its patience for those that came after it."""
    vt = VirtualTime()
    gate = gate_in(vt)
    log: list[tuple[str, float]] = []
    start = vt.now

    async def scene() -> None:
        await request(vt, gate, EDIT, log, "busy")
        firsts = [request(vt, gate, FIRST, log, f"first{i}", after=0.05 + i / 2) for i in range(40)]
        await asyncio.gather(
            *firsts,
            request(vt, gate, EDIT, log, "edit", after=0.5),
            request(vt, gate, FINAL, log, "final", after=0.5),
        )

    await vt.run(scene())

    served = {name: at - start for name, at in log}
    asked = {f"first{i}": 0.05 + i / 2 for i in range(40)}
    for name, due in (("final", 0.5 + FINAL.patience), ("edit", 0.5 + EDIT.patience)):
        # First messages asked before it was due went first; none asked after overtook it.
        assert all(served[n] < served[name] for n, t in asked.items() if t <= due), name
        assert all(served[n] > served[name] for n, t in asked.items() if t > due), name
    assert served["final"] < served["edit"] < 12.0  # long before the last first message (~41 s)
    # Overloaded as it is, the gate never went faster than its budget.
    times = sorted(served.values())
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))


async def test_a_burst_of_first_messages_goes_at_once_up_to_the_budget() -> None:
    """Fifty channels' first messages at once: the budget's worth goes now, the rest one window
    after the earliest answers."""
    vt = VirtualTime()
    gate = gate_in(vt, per_window=47, window=1.0)
    log: list[tuple[str, float]] = []
    start = vt.now

    await vt.run(asyncio.gather(*(request(vt, gate, FIRST, log, f"c{i}", latency=0.05) for i in range(50))))

    times = sorted(at - start for _, at in log)
    assert times[:47] == pytest.approx([0.0] * 47)
    assert times[47:] == pytest.approx([1.05] * 3)  # a second after the first answers


async def test_a_request_counts_until_a_window_after_its_answer() -> None:
    """The platform may see a request any time between its turn and its answer: the next one
    waits for the window after the answer, however long the answer took."""
    vt = VirtualTime()
    gate = gate_in(vt)
    log: list[tuple[str, float]] = []
    start = vt.now

    async def scene() -> None:
        await asyncio.gather(
            request(vt, gate, EDIT, log, "slow", latency=2.5),
            request(vt, gate, FIRST, log, "next", after=0.1),
        )

    await vt.run(scene())
    assert [(n, at - start) for n, at in log] == [("slow", 0.0), ("next", pytest.approx(3.5))]


@pytest.mark.parametrize("seed", range(5))
async def test_no_second_of_the_platform_ever_sees_more_than_the_budget(seed: int) -> None:
    """Random latencies and urgencies; each request reaches the platform at a random moment
    between its turn and its answer. Whatever window the platform counts in, at most the budget."""
    rng = random.Random(seed)
    vt = VirtualTime()
    gate = gate_in(vt, per_window=10, window=1.0)
    seen: list[float] = []

    async def one(after: float, urgency: Urgency, latency: float, arrives: float) -> None:
        await vt.sleep(after)
        ticket = await gate.wait(urgency)
        with making(ticket):
            await vt.sleep(latency * arrives)
            seen.append(vt.now)
            await vt.sleep(latency * (1 - arrives))
            ticket.answered()

    await vt.run(
        asyncio.gather(
            *(
                one(rng.uniform(0, 5), rng.choice(list(Urgency)), rng.uniform(0, 0.4), rng.random())
                for _ in range(150)
            )
        )
    )

    assert len(seen) == 150
    seen.sort()
    for i, at in enumerate(seen):
        assert sum(1 for t in seen[i:] if t < at + 1.0) <= 10, at


async def test_a_waiter_cancelled_in_the_queue_takes_no_turn() -> None:
    vt = VirtualTime()
    gate = gate_in(vt)
    log: list[tuple[str, float]] = []
    start = vt.now

    async def scene() -> None:
        await request(vt, gate, EDIT, log, "busy")
        gone = asyncio.create_task(request(vt, gate, FIRST, log, "gone"))
        later = asyncio.create_task(request(vt, gate, EDIT, log, "later", after=0.1))
        await vt.sleep(0.5)
        gone.cancel()
        await later

    await vt.run(scene())
    assert [(n, at - start) for n, at in log] == [("busy", 0.0), ("later", 1.0)]


async def test_typing_goes_only_when_nothing_waits_and_the_budget_is_mostly_free() -> None:
    vt = VirtualTime()
    gate = gate_in(vt, per_window=4)
    held: list[Ticket] = []

    async def scene() -> None:
        first = gate.try_now()
        assert first is not None
        held.append(first)
        held.append(await gate.wait(EDIT))
        assert gate.try_now() is None  # half the budget is in use
        for ticket in held:
            ticket.close()
        await vt.sleep(1.0)
        assert gate.try_now() is not None

    await vt.run(scene())
