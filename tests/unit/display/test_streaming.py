"""bot.display.streaming: the presenter paces sends/edits per chat and always delivers the exact final text.

Everything runs in virtual time (tests/fakes/virtual_time.py); the surface records each call with the
same clock the presenter uses, so the policy is checked exactly and nothing really waits.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Sequence

import pytest

from bot.display.streaming import (
    MAX_READ_PAUSE,
    READ_LEAD,
    PacingPolicy,
    PresentedAnswer,
    StreamPresenter,
    Surface,
    TokenBucket,
    Urgency,
    present_stream,
)
from bot.display.text import find_fences
from bot.errors import PlatformRateLimited
from tests.fakes.surfaces import Call, FoldingRecordingSurface, GatedRecordingSurface, RecordingSurface
from tests.fakes.virtual_time import VirtualTime

POLICY = PacingPolicy(min_interval=1.0, max_length=200)
INDICATOR = POLICY.typing_indicator

CODE_ANSWER = (
    "Here is the code you asked for, with a short explanation first.\n\n"
    "```python\n" + "".join(f"value_{i} = compute({i})\n" for i in range(14)) + "```\n\n"
    "That is all. Each line computes one value and the block ends here."
)


def words(n: int) -> list[str]:
    return [f"w{i} " for i in range(n)]


def tokens_of(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def stream(
    vt: VirtualTime,
    surface: Surface,
    tokens: Sequence[str],
    *,
    policy: PacingPolicy = POLICY,
    delay: float = 0.05,
    first_after: float = 0.0,
    outcome: str = "complete",
    note: str | None = None,
    bucket: TokenBucket | None = None,
) -> PresentedAnswer:
    """Stream ``tokens`` (one per ``delay`` virtual seconds) through a presenter and finish it."""
    async with StreamPresenter(surface, policy, clock=vt.time, sleep=vt.sleep, bucket=bucket) as presenter:
        await vt.sleep(first_after)
        for token in tokens:
            await vt.sleep(delay)
            presenter.append(token)
        return await presenter.finish(outcome, note)  # type: ignore[arg-type]


def assert_paced(calls: Sequence[Call], policy: PacingPolicy) -> None:
    """Token bucket invariant: ops i..j inclusive need (j - i + 1 - burst) intervals between them."""
    times = [c.at for c in calls]
    b, interval = policy.burst, policy.min_interval
    for i in range(len(times)):
        for j in range(i + b, len(times)):
            assert times[j] - times[i] >= (j - i + 1 - b) * interval - 1e-9, (i, j, times)


def rejoin(pieces: Sequence[str], expected: str) -> bool:
    """Whether removing fence markers added at splits from ``pieces`` can give ``expected``."""
    opener = re.compile(r" {0,3}(`{3,}|~{3,})[^\n]*\n")
    closer = re.compile(r"(`{3,}|~{3,})\Z")

    def go(i: int, out: str, reopened: bool) -> bool:
        piece = pieces[i]
        if reopened:
            m = opener.match(piece)
            if m is None:
                return False
            piece = piece[m.end() :]
        candidates = [(piece, False)]
        m = closer.search(piece)
        if m is not None and i < len(pieces) - 1:
            candidates.append((piece[: m.start()], True))
            if piece[: m.start()].endswith("\n"):
                candidates.append((piece[: m.start() - 1], True))
        for body, added in candidates:
            new = out + body
            if not expected.startswith(new):
                continue
            if i == len(pieces) - 1:
                if new == expected:
                    return True
            elif go(i + 1, new, added):
                return True
        return False

    return go(0, "", False)


def intermediate(surface: RecordingSurface) -> list[Call]:
    return [c for c in surface.operations if c.ok and not c.final]


# ---------------------------------------------------------------- pacing


@pytest.mark.parametrize(
    "policy",
    [
        PacingPolicy(min_interval=1.0, max_length=200),
        PacingPolicy(min_interval=0.5, max_length=200, burst=3),
        PacingPolicy(min_interval=3.0, max_length=120, burst=2),
    ],
)
async def test_operations_respect_the_pacing_policy(policy: PacingPolicy) -> None:
    """Sends, edits and the closing call never come faster than the token bucket allows."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, max_length=policy.max_length)
    await vt.run(stream(vt, surface, words(300), policy=policy, delay=0.02))
    assert len(surface.operations) > 5
    assert_paced(surface.paced, policy)


async def test_pacing_holds_where_the_platform_sees_requests_despite_varying_latency() -> None:
    """The interval counts from each answer, so a slow request followed by a fast one stays paced."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, latencies=[0.8, 0.0], sleep=vt.sleep)
    await vt.run(stream(vt, surface, words(100), policy=PacingPolicy(1.0, 4000), delay=0.05))
    assert len(surface.operations) > 3
    assert_paced(surface.paced, PacingPolicy(1.0, 4000))


@pytest.mark.parametrize("from_response", [True, False])
async def test_an_answer_held_by_the_client_library_delays_the_next_slot_only_if_counted(
    from_response: bool,
) -> None:
    """Every fifth answer comes back 0.9 s late (discord.py waiting out an emptied bucket): counted
    from the start, the requests stay one interval apart; counted from the answer, a gap opens."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, holds=[0, 0, 0, 0, 0.9], sleep=vt.sleep)
    policy = PacingPolicy(1.0, 4000, count_from_response=from_response)
    await vt.run(stream(vt, surface, words(200), policy=policy, delay=0.05))
    shown = intermediate(surface)
    assert len(shown) >= 9
    gaps = [b.at - a.at for a, b in itertools.pairwise(shown)]
    if from_response:
        assert gaps[4] == pytest.approx(1.9)
    else:
        assert gaps == pytest.approx([1.0] * len(gaps))
    assert_paced(surface.paced, policy)


@pytest.mark.parametrize("gated", [True, False])
async def test_behind_a_bot_wide_queue_the_text_sent_is_the_newest(gated: bool) -> None:
    """Every request waits 2 s in a bot-wide queue. A GatedSurface's text is picked when its turn
    comes (at most a token behind); a surface that waits inside the request sends 2 s old text."""
    vt = VirtualTime()
    start = vt.now
    policy = PacingPolicy(1.0, 4000)
    surface = (
        GatedRecordingSurface(vt.time, wait=2.0, sleep=vt.sleep)
        if gated
        else RecordingSurface(vt.time, latencies=[2.0], sleep=vt.sleep)
    )
    await vt.run(stream(vt, surface, words(200), policy=policy, delay=0.05))
    shown = intermediate(surface)
    assert len(shown) >= 3
    arrived = [int((c.at - start) / 0.05 + 1e-6) for c in shown]  # tokens appended by then
    behind = [n - len(re.findall(r"w\d+", c.text)) for n, c in zip(arrived, shown, strict=True)]
    if gated:
        assert max(behind) <= 1
        assert isinstance(surface, GatedRecordingSurface) and surface.turns == len(shown)
    else:
        assert min(behind) >= 39
    assert_paced(surface.paced, policy)


async def test_a_paced_reader_wakes_just_before_each_slot() -> None:
    """until_next_show: at once while a slot is open, else until a hair before the next one."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    policy = PacingPolicy(1.0, 4000)
    woke: list[float] = []

    async def answer() -> None:
        async with StreamPresenter(surface, policy, clock=vt.time, sleep=vt.sleep) as presenter:
            start = vt.now
            await presenter.until_next_show()  # nothing shown yet: a slot is open
            woke.append(vt.now - start)
            presenter.append("first ")
            await vt.sleep(0)  # the flusher shows it and spends the slot
            await vt.sleep(0)
            await presenter.until_next_show()
            woke.append(vt.now - start)
            presenter.append("second")
            await presenter.finish()

    await vt.run(answer())
    assert woke == pytest.approx([0.0, 1.0 - READ_LEAD])
    assert intermediate(surface)[0].text == "first " + INDICATOR
    assert surface.final_texts() == ["first second"]


async def test_a_paced_reader_follows_a_budget_announced_while_an_edit_is_in_flight() -> None:
    """The first edit's answer tells the real budget (one per 0.5 s, not 5 s): a reader that began
    waiting during that edit wakes for the new slot, not the old one."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, latencies=[0.2], sleep=vt.sleep)
    policy = PacingPolicy(5.0, 4000)
    bucket = TokenBucket(policy, vt.time)
    woke: list[float] = []

    async def answer() -> None:
        async with StreamPresenter(
            surface, policy, clock=vt.time, sleep=vt.sleep, bucket=bucket
        ) as presenter:
            start = vt.now
            presenter.append("first ")
            await vt.sleep(0)  # the flusher takes the slot; its edit is in flight for 0.2 s
            await vt.sleep(0)

            async def announce() -> None:
                await vt.sleep(0.1)
                bucket.retune(0.5)

            announcing = asyncio.create_task(announce())
            await presenter.until_next_show()
            woke.append(vt.now - start)
            await announcing
            await presenter.finish()

    await vt.run(answer())
    assert 0.5 < woke[0] < 0.7  # about 0.1 + 0.98 * 0.5 - READ_LEAD; 5 s (or 1.5) without looking again


async def test_a_paced_reader_never_leaves_the_stream_unread_for_long() -> None:
    """A slow budget (one edit per 5 s) still gets the stream read every MAX_READ_PAUSE."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    woke: list[float] = []

    async def answer() -> None:
        async with StreamPresenter(
            surface, PacingPolicy(5.0, 4000), clock=vt.time, sleep=vt.sleep
        ) as presenter:
            presenter.append("first ")
            await vt.sleep(0)
            await vt.sleep(0)
            start = vt.now
            await presenter.until_next_show()
            woke.append(vt.now - start)
            await presenter.finish()

    await vt.run(answer())
    assert woke == pytest.approx([MAX_READ_PAUSE])


async def test_first_text_shows_at_once_then_edits_come_exactly_when_a_slot_opens() -> None:
    """Low lag: the first token is sent on arrival; while tokens flow, each edit lands on the slot."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    start = vt.now
    policy = PacingPolicy(min_interval=1.0, max_length=4000)
    await vt.run(stream(vt, surface, words(100), policy=policy, delay=0.1, first_after=0.45))
    shown = intermediate(surface)
    assert shown[0].kind == "send"
    assert shown[0].at == pytest.approx(start + 0.55)
    gaps = [b.at - a.at for a, b in itertools.pairwise(shown)]
    assert gaps == pytest.approx([1.0] * len(gaps))


async def test_deltas_between_slots_are_coalesced_into_one_edit() -> None:
    """200 tokens in two seconds take a handful of operations, not one per token."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    await vt.run(stream(vt, surface, words(200), policy=PacingPolicy(1.0, 4000), delay=0.01))
    assert len(surface.operations) <= 5


async def test_no_edit_repeats_the_text_a_message_already_has() -> None:
    """Pauses and empty deltas never cause an unchanged edit (the fake refuses those)."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)

    async def scenario() -> None:
        async with StreamPresenter(surface, POLICY, clock=vt.time, sleep=vt.sleep) as presenter:
            for token in ["Hello", "", " world", ""]:
                presenter.append(token)
                await vt.sleep(3.0)
            presenter.append("")
            await vt.sleep(5.0)
            await presenter.finish()

    await vt.run(scenario())
    assert all(c.ok for c in surface.operations)
    by_handle: dict[str, list[str]] = {}
    for c in surface.operations:
        by_handle.setdefault(c.handle, []).append(c.text)
    for texts in by_handle.values():
        assert all(a != b for a, b in itertools.pairwise(texts))


async def test_rate_limit_on_one_surface_does_not_slow_another() -> None:
    """A retry_after from one chat holds that chat only; the other keeps its one-per-second pace."""
    vt = VirtualTime()
    slow = RecordingSurface(vt.time, rate_limit_on={2: 5.0})
    fast = RecordingSurface(vt.time)
    policy = PacingPolicy(1.0, 4000)

    async def both() -> None:
        async with (
            StreamPresenter(slow, policy, clock=vt.time, sleep=vt.sleep) as a,
            StreamPresenter(fast, policy, clock=vt.time, sleep=vt.sleep) as b,
        ):
            for token in words(80):
                await vt.sleep(0.1)
                a.append(token)
                b.append(token)
            await a.finish()
            await b.finish()

    await vt.run(both())
    shown = intermediate(fast)
    assert [b.at - a.at for a, b in itertools.pairwise(shown)] == pytest.approx([1.0] * (len(shown) - 1))
    refused = next(c for c in slow.operations if not c.ok)
    after = [c for c in slow.paced if c.at > refused.at]
    assert after
    assert after[0].at >= refused.at + 5.0


async def test_presenters_sharing_a_bucket_pace_the_chat_together() -> None:
    """Two answers in one chat with one bucket: their combined operations respect the policy."""
    vt = VirtualTime()
    a = RecordingSurface(vt.time)
    b = RecordingSurface(vt.time)
    bucket = TokenBucket(POLICY, vt.time)

    async def both() -> None:
        async with (
            StreamPresenter(a, POLICY, clock=vt.time, sleep=vt.sleep, bucket=bucket) as pa,
            StreamPresenter(b, POLICY, clock=vt.time, sleep=vt.sleep, bucket=bucket) as pb,
        ):
            for token in words(60):
                await vt.sleep(0.05)
                pa.append(token)
                pb.append(token)
            await pa.finish()
            await pb.finish()

    await vt.run(both())
    assert_paced(sorted(a.paced + b.paced, key=lambda c: c.at), POLICY)


async def test_a_new_answers_first_message_takes_the_chats_next_slot_before_anothers_edit() -> None:
    """One answer streams in a chat; another starts there: its first words go at the next slot,
    before the streaming answer's next edit (both wait for that same slot)."""
    vt = VirtualTime()
    start = vt.now
    a = RecordingSurface(vt.time)
    b = RecordingSurface(vt.time)
    bucket = TokenBucket(POLICY, vt.time)

    async def scene() -> None:
        async with StreamPresenter(a, POLICY, clock=vt.time, sleep=vt.sleep, bucket=bucket) as pa:
            async with StreamPresenter(b, POLICY, clock=vt.time, sleep=vt.sleep, bucket=bucket) as pb:
                for i, token in enumerate(words(100)):
                    await vt.sleep(0.05)
                    pa.append(token)
                    if i >= 45:  # the second question's answer starts at 2.3 s
                        pb.append(token)
                await pb.finish()
            await pa.finish()

    await vt.run(scene())
    b_first = b.operations[0]
    assert b_first.kind == "send" and b_first.at - start == pytest.approx(3.05)
    a_edits = [c.at - start for c in a.operations]
    assert a_edits[:3] == pytest.approx([0.05, 1.05, 2.05])  # its own pace until the question
    assert not [t for t in a_edits if 2.3 < t <= 3.05 + 1e-9]  # none took b's slot
    assert a_edits[3] == pytest.approx(4.05)
    assert_paced(sorted(a.paced + b.paced, key=lambda c: c.at), POLICY)


async def test_a_chat_bucket_serves_waiters_by_urgency_without_starving_edits() -> None:
    """An edit waits for the chat's slot while new answers keep arriving, two per slot: each
    first message asked before the edit was due goes first; none asked after it overtakes it."""
    vt = VirtualTime()
    start = vt.now
    bucket = TokenBucket(POLICY, vt.time)
    bucket.take()  # an answer's request just went: the next slot is a second away
    served: dict[str, float] = {}

    async def waiter(name: str, urgency: Urgency, after: float) -> None:
        await vt.sleep(after)
        ticket = bucket.join(urgency)
        try:
            while (wait := bucket.delay(ticket)) > 0:
                await vt.sleep(wait)
        finally:
            bucket.leave(ticket)
        bucket.take()
        served[name] = vt.now - start

    asked = {f"first{i}": 0.05 + i / 2 for i in range(30)}
    await vt.run(
        asyncio.gather(
            waiter("edit", Urgency.EDIT, 0.01),
            waiter("final", Urgency.FINAL, 0.02),
            *(waiter(name, Urgency.FIRST, at) for name, at in asked.items()),
        )
    )

    for name, due in (("final", 0.02 + Urgency.FINAL.patience), ("edit", 0.01 + Urgency.EDIT.patience)):
        assert all(served[n] < served[name] for n, t in asked.items() if t <= due), name
        assert all(served[n] > served[name] for n, t in asked.items() if t > due), name
    assert served["final"] < served["edit"] < 12.0
    times = sorted(served.values())
    assert all(b - a >= POLICY.min_interval - 1e-9 for a, b in itertools.pairwise(times))


async def test_turns_at_a_bot_wide_gate_say_how_much_each_request_is_noticed() -> None:
    """The first turn is for the answer's first message; a message the answer moved on from gets
    a final-text turn; the rest are intermediate edits."""
    vt = VirtualTime()
    surface = GatedRecordingSurface(vt.time, wait=0.1, sleep=vt.sleep)
    await vt.run(stream(vt, surface, words(120), delay=0.05))  # 200-character messages

    assert surface.urgencies[0] is Urgency.FIRST
    assert set(surface.urgencies[1:]) == {Urgency.FINAL, Urgency.EDIT}
    sealing = [c for c in surface.operations if c.final and c.ok]
    finals = surface.urgencies.count(Urgency.FINAL)
    assert 1 <= finals <= len(sealing)  # every streaming seal, not the final pass (no turn there)


# ---------------------------------------------------------------- what is shown


async def test_final_text_is_exactly_the_answer_across_continuation_messages() -> None:
    """A long answer with a code block ends up, fence markers aside, exactly in several messages."""
    vt = VirtualTime()
    policy = PacingPolicy(1.0, 120)
    surface = RecordingSurface(vt.time, max_length=120)
    result = await vt.run(stream(vt, surface, tokens_of(CODE_ANSWER), policy=policy, delay=0.03))
    texts = surface.final_texts()
    assert result.text == CODE_ANSWER
    assert result.handles == surface.order
    assert len(texts) >= 4
    assert all(len(t) <= 120 for t in texts)
    assert rejoin(texts, CODE_ANSWER)
    assert all(sum(1 for f in find_fences(t) if not f.closed) == 0 for t in texts)
    assert surface.finished == (tuple(surface.order), "complete")


async def test_a_folding_surface_gets_the_last_text_and_the_finish_in_one_request() -> None:
    """One request fewer per answer: the last message's final edit also finishes the answer (here
    the last of several messages, shown with its typing indicator when the stream ends)."""
    vt = VirtualTime()
    policy = PacingPolicy(1.0, 120)
    surface = FoldingRecordingSurface(vt.time, max_length=120)

    async def answer() -> PresentedAnswer:
        async with StreamPresenter(surface, policy, clock=vt.time, sleep=vt.sleep) as presenter:
            for token in tokens_of(CODE_ANSWER):
                await vt.sleep(0.03)
                presenter.append(token)
            await vt.sleep(5.0)  # every message is out, the last one still with its indicator
            return await presenter.finish()

    result = await vt.run(answer())
    assert len(result.handles) >= 4
    assert rejoin(surface.final_texts(), CODE_ANSWER)
    assert surface.finished == (tuple(surface.order), "complete")
    assert [] == [c for c in surface.calls if c.kind == "finish"]
    last_edit, folded = surface.calls[-2:]
    assert folded.kind == "folded"
    assert last_edit.final and last_edit.handle == result.handles[-1]
    assert_paced(surface.paced, policy)


async def test_a_pausing_stream_still_shows_its_newest_text_after_messages_were_sealed() -> None:
    """The model pauses right after a burst that filled several messages: the newest text shows
    within the budget anyway, not only when the next delta (or the end) comes."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, max_length=120)
    policy = PacingPolicy(1.0, 120)
    pause_from: list[float] = []

    async def answer() -> None:
        async with StreamPresenter(surface, policy, clock=vt.time, sleep=vt.sleep) as presenter:
            presenter.append(CODE_ANSWER)  # one burst, four or more messages' worth
            pause_from.append(vt.now)
            await vt.sleep(30.0)
            await presenter.finish()

    await vt.run(answer())
    before_finish = [c for c in surface.operations if c.at < pause_from[0] + 30.0]
    assert len(surface.order) >= 4
    assert {c.handle for c in before_finish} == set(surface.order)  # every message shown in the pause


async def test_an_answer_complete_before_its_first_show_is_sent_finished_in_one_request() -> None:
    vt = VirtualTime()
    surface = FoldingRecordingSurface(vt.time)

    async def answer() -> PresentedAnswer:
        async with StreamPresenter(surface, POLICY, clock=vt.time, sleep=vt.sleep) as presenter:
            presenter.append("Short.")
            return await presenter.finish()

    result = await vt.run(answer())
    assert ["send", "folded"] == [c.kind for c in surface.calls if c.kind != "typing"]
    assert surface.finished == (tuple(result.handles), "complete")
    assert surface.final_texts() == ["Short."]


async def test_a_surface_that_cannot_fold_this_time_gets_its_finish_after() -> None:
    vt = VirtualTime()
    surface = FoldingRecordingSurface(vt.time, fold=False)
    await vt.run(stream(vt, surface, words(40), delay=0.05, outcome="stopped"))
    assert [c.kind for c in surface.calls[-2:]] == ["edit", "finish"]
    assert surface.finished == (tuple(surface.order), "stopped")


async def test_with_the_final_text_already_shown_the_finish_is_a_request_of_its_own() -> None:
    """Nothing left to edit (no indicator, everything shown): the finish still comes."""
    vt = VirtualTime()
    policy = PacingPolicy(1.0, 4000, typing_indicator="")
    surface = FoldingRecordingSurface(vt.time)

    async def answer() -> None:
        async with StreamPresenter(surface, policy, clock=vt.time, sleep=vt.sleep) as presenter:
            for token in words(10):
                await vt.sleep(0.05)
                presenter.append(token)
            await vt.sleep(3.0)  # every word is shown by now
            await presenter.finish()

    await vt.run(answer())
    assert surface.calls[-1].kind == "finish"
    assert [] == [c for c in surface.calls if c.kind == "folded"]
    assert surface.final_texts() == ["".join(words(10))]


async def test_a_rate_limited_folded_edit_is_retried_and_still_finishes() -> None:
    vt = VirtualTime()
    surface = FoldingRecordingSurface(vt.time, rate_limit_finals=[2.5])
    await vt.run(stream(vt, surface, words(30), delay=0.05))
    refused = next(c for c in surface.calls if not c.ok)
    assert refused.final
    assert surface.calls[-1].kind == "folded"
    assert surface.calls[-2].at >= refused.at + 2.5
    assert surface.final_texts() == ["".join(words(30))]


async def test_one_huge_delta_is_split_into_messages_within_the_limit() -> None:
    """A single delta far over the limit still yields messages that each fit."""
    vt = VirtualTime()
    answer = "".join(f"Sentence number {i} is here. " for i in range(60))
    surface = RecordingSurface(vt.time, max_length=200)
    await vt.run(stream(vt, surface, [answer]))
    assert all(len(c.text) <= 200 for c in surface.operations)
    assert rejoin(surface.final_texts(), answer)


async def test_intermediate_texts_show_the_indicator_and_final_texts_do_not() -> None:
    """Every streaming update ends in the typing indicator; final texts never contain it."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, max_length=200)
    await vt.run(stream(vt, surface, words(150)))
    updates = intermediate(surface)
    assert updates
    assert all(c.text.endswith(INDICATOR) for c in updates)
    assert all(INDICATOR not in t for t in surface.final_texts())


async def test_intermediate_texts_have_balanced_fences() -> None:
    """While a code block streams, each update closes it, so it always renders."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, max_length=120)
    await vt.run(stream(vt, surface, tokens_of(CODE_ANSWER, 3), policy=PacingPolicy(0.3, 120)))
    updates = intermediate(surface)
    inside = [c for c in updates if "```python" in c.text]
    assert inside
    assert all(all(f.closed for f in find_fences(c.text)) for c in updates)


async def test_typing_repeats_until_the_first_text_shows() -> None:
    """With no token for ten seconds, "typing…" goes out every four seconds, then stops."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    start = vt.now
    await vt.run(stream(vt, surface, words(5), first_after=10.0, delay=0.5))
    typing = [c.at - start for c in surface.calls if c.kind == "typing"]
    assert typing == pytest.approx([0.0, 4.0, 8.0])
    first_send = next(c for c in surface.calls if c.kind == "send")
    assert all(c.at < first_send.at for c in surface.calls if c.kind == "typing")


async def test_a_whitespace_only_last_piece_is_not_sent() -> None:
    """Trailing blank lines that spill past the limit are not sent as a blank message."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, max_length=100)
    answer = "word " * 19 + "\n" * 50
    await vt.run(stream(vt, surface, [answer], policy=PacingPolicy(1.0, 100)))
    assert surface.final_texts() == ["word " * 19 + "\n" * 5]
    assert all(c.ok for c in surface.operations)


async def test_empty_answer_shows_a_placeholder() -> None:
    """An answer with no text still produces one (non-empty) message."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    result = await vt.run(stream(vt, surface, []))
    assert surface.final_texts() == ["_(no answer)_"]
    assert result.text == ""


# ---------------------------------------------------------------- notes


@pytest.mark.parametrize(
    ("outcome", "note"),
    [("stopped", "(stopped)"), ("failed", "⚠️ The answer was cut off: connection lost")],
)
async def test_a_note_is_appended_in_italics_on_stop_or_failure(outcome: str, note: str) -> None:
    """The answer is followed by a blank line and the note in italics; the surface hears the outcome."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    answer = "".join(words(20))
    result = await vt.run(stream(vt, surface, words(20), outcome=outcome, note=note))
    assert rejoin(surface.final_texts(), f"{answer}\n\n_{note}_")
    assert result.text == answer
    assert surface.finished == (tuple(surface.order), outcome)


async def test_a_note_after_a_cut_off_code_block_goes_outside_the_block() -> None:
    """A fence left open by a stop is closed before the note."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)
    await vt.run(stream(vt, surface, ["```py\n", "x = 1"], outcome="stopped", note="(stopped)"))
    assert surface.final_texts() == ["```py\nx = 1\n```\n\n_(stopped)_"]


# ---------------------------------------------------------------- failures


async def test_final_edit_waits_out_retry_after_and_arrives() -> None:
    """A rate-limited final edit is retried after exactly the time the platform asked for."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, rate_limit_finals=[3.0, 2.0])
    answer_tokens = words(30)
    await vt.run(stream(vt, surface, answer_tokens))
    finals = [c for c in surface.operations if c.final]
    assert [c.ok for c in finals] == [False, False, True]
    assert finals[1].at - finals[0].at >= 3.0
    assert finals[2].at - finals[1].at >= 2.0
    assert surface.final_texts() == ["".join(answer_tokens)]


async def test_intermediate_rate_limit_holds_the_chat_then_shows_the_newest_text() -> None:
    """After a retry_after during streaming, the next update waits for it and carries the latest text."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, rate_limit_on={2: 4.0})
    await vt.run(stream(vt, surface, words(100), policy=PacingPolicy(1.0, 4000), delay=0.1))
    ops = surface.operations
    refused = ops[1]
    assert not refused.ok
    assert ops[2].at == pytest.approx(refused.at + 4.0)
    assert len(ops[2].text) > len(refused.text)


async def test_failing_intermediate_edits_do_not_lose_the_final_text() -> None:
    """Even when every streaming update fails, the final texts arrive complete."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, max_length=120, fail_intermediate=True)
    await vt.run(stream(vt, surface, tokens_of(CODE_ANSWER), policy=PacingPolicy(1.0, 120)))
    assert not any(c.ok for c in surface.operations if not c.final)
    assert rejoin(surface.final_texts(), CODE_ANSWER)


async def test_failed_sealing_edit_is_redone_in_the_final_pass() -> None:
    """A message's finalising edit that fails mid-stream is not retried at once but delivered at the end."""
    answer = words(120)
    vt = VirtualTime()
    dry = RecordingSurface(vt.time, max_length=200)
    await vt.run(stream(vt, dry, answer, delay=0.1))
    first_seal = next(c for c in dry.operations if c.final and c.handle == dry.order[0])
    assert first_seal.handle != dry.order[-1]

    vt = VirtualTime()
    surface = RecordingSurface(vt.time, max_length=200, fail_on={first_seal.number})
    await vt.run(stream(vt, surface, answer, delay=0.1))
    failed = next(c for c in surface.operations if not c.ok)
    assert failed.final
    redone = [c for c in surface.operations if c.handle == failed.handle and c.ok and c.at > failed.at]
    assert len(redone) == 1
    assert rejoin(surface.final_texts(), "".join(answer))


async def test_final_delivery_gives_up_after_ten_rate_limits() -> None:
    """A platform that never lets the final edit through makes finish raise, after bounded attempts."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time, rate_limit_finals=[1.0] * 50)
    with pytest.raises(PlatformRateLimited):
        await vt.run(stream(vt, surface, words(10)))
    assert len([c for c in surface.operations if c.final]) == 10


async def test_present_stream_ends_a_broken_stream_with_a_note_and_reraises() -> None:
    """present_stream shows what came, adds the cut-off note, marks the answer failed, re-raises."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)

    async def deltas() -> AsyncIterator[str]:
        for token in words(10):
            await vt.sleep(0.1)
            yield token
        raise ConnectionError("connection lost")

    with pytest.raises(ConnectionError):
        await vt.run(present_stream(deltas(), surface, POLICY, clock=vt.time, sleep=vt.sleep))
    expected = "".join(words(10)) + "\n\n_⚠️ The answer was cut off: connection lost_"
    assert surface.final_texts() == [expected]
    assert surface.finished is not None
    assert surface.finished[1] == "failed"


async def test_present_stream_returns_the_answer() -> None:
    """present_stream with a healthy stream returns the handles and the exact text."""
    vt = VirtualTime()
    surface = RecordingSurface(vt.time)

    async def deltas() -> AsyncIterator[str]:
        for token in words(10):
            await vt.sleep(0.1)
            yield token

    result = await vt.run(present_stream(deltas(), surface, POLICY, clock=vt.time, sleep=vt.sleep))
    assert result == PresentedAnswer(surface.order, "".join(words(10)))
    assert surface.final_texts() == ["".join(words(10))]


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def test_a_limit_measured_in_utf16_units_holds_for_emoji_heavy_answers() -> None:
    """With Telegram's measure (an emoji is two units), every text sent fits and the answer is whole."""
    vt = VirtualTime()
    policy = PacingPolicy(1.0, 120, measure=utf16_units)
    answer = "".join(f"{i} 😀🎉 " for i in range(80))  # far more units than characters
    surface = RecordingSurface(vt.time, max_length=10_000)

    await vt.run(stream(vt, surface, tokens_of(answer, 3), policy=policy, delay=0.03))

    assert all(utf16_units(c.text) <= 120 for c in surface.operations)
    assert answer == "".join(surface.final_texts())
    assert len(surface.final_texts()) >= 5
