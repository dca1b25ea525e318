"""The fair queue's order, the poll back-off, captions and the paced progress board."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

from hypothesis import given
from hypothesis import strategies as st

from bot.display.streaming import PacingPolicy, TokenBucket
from bot.errors import PlatformRateLimited
from bot.images.progress import ProgressBoard
from bot.images.queue import FairQueue, ordinal
from bot.images.service import ImageConfig, caption_for, poll_delays
from bot.minitoolai.types import ImageParams
from tests.fakes.virtual_time import VirtualTime


def drain(queue: FairQueue[str]) -> list[str]:
    found = []
    while (item := queue.pop()) is not None:
        found.append(item)
    return found


def test_members_of_a_community_take_turns() -> None:
    """Alice's three and Bob's two alternate, each member's own in order."""
    queue: FairQueue[str] = FairQueue()
    for item in ("a1", "a2", "a3"):
        queue.push("g", "alice", item)
    for item in ("b1", "b2"):
        queue.push("g", "bob", item)
    assert ["a1", "b1", "a2", "b2", "a3"] == drain(queue)


def test_a_newcomer_goes_before_members_already_served() -> None:
    """After Alice's first started, Bob's first request is next, ahead of Alice's second."""
    queue: FairQueue[str] = FairQueue()
    queue.push("g", "alice", "a1")
    assert "a1" == queue.pop()
    queue.push("g", "alice", "a2")
    queue.push("g", "bob", "b1")
    assert ["b1", "a2"] == drain(queue)


def test_communities_take_turns_before_members() -> None:
    """A busy community with two members does not get two turns for one of a quiet community."""
    queue: FairQueue[str] = FairQueue()
    for n in range(2):
        queue.push("busy", "alice", f"a{n}")
        queue.push("busy", "bob", f"b{n}")
    queue.push("quiet", "carol", "c0")
    queue.push("quiet", "carol", "c1")
    assert ["a0", "c0", "b0", "c1", "a1", "b1"] == drain(queue)


def test_remove_takes_an_item_out_of_line() -> None:
    """A removed item is skipped; removing twice says False."""
    queue: FairQueue[str] = FairQueue()
    for item in ("a1", "a2"):
        queue.push("g", "alice", item)
    assert queue.remove("a1")
    assert not queue.remove("a1")
    assert ["a2"] == drain(queue)
    assert 0 == len(queue)


@given(st.lists(st.tuples(st.sampled_from("gh"), st.sampled_from("uvw"), st.booleans()), max_size=40))
def test_order_predicts_exactly_what_pop_returns(steps: list[tuple[str, str, bool]]) -> None:
    """Whatever was pushed and popped before, order() lists the items as pop() will return them."""
    queue: FairQueue[str] = FairQueue()
    for n, (group, lane, pop) in enumerate(steps):
        queue.push(group, lane, f"{group}{lane}{n}")
        if pop:
            queue.pop()
    predicted = queue.order()
    assert predicted == drain(queue)


def test_ordinals() -> None:
    """1st, 2nd, 3rd, 4th, 11th-13th and 21st-23rd read right."""
    assert ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "111th"] == [
        ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 111)
    ]


def test_poll_delays_grow_by_the_factor_up_to_the_cap() -> None:
    """The default back-off is 1, 1.5, 2.25, then 3 seconds for ever."""
    delays = poll_delays(ImageConfig())
    assert [1.0, 1.5, 2.25, 3.0, 3.0] == [next(delays) for _ in range(5)]


def test_caption_cuts_only_the_prompt_to_the_limit() -> None:
    """A long prompt is cut with an ellipsis; model, size, steps and cost always stay whole."""
    params = ImageParams(prompt="word " * 500, model="dreamshaper", steps=6, width=1152, height=768)
    caption = caption_for(params, "$0.0015", 200)
    assert len(caption) <= 200
    first, details = caption.split("\n")
    assert first.endswith("…")
    assert "dreamshaper · 1152×768 · 6 steps · $0.0015" == details
    short = dataclasses.replace(params, prompt="a fox")
    assert "a fox\ndreamshaper · 1152×768 · 6 steps · $0.0015" == caption_for(short, "$0.0015", 1024)


class Editor:
    def __init__(self, vt: VirtualTime, refuse: list[float] | None = None) -> None:
        self.vt = vt
        self.edits: list[tuple[float, str, str]] = []
        self.refuse = refuse or []

    async def edit_progress(self, handle: str, text: str) -> None:
        await asyncio.sleep(0)
        if self.refuse:
            raise PlatformRateLimited(self.refuse.pop(0))
        self.edits.append((self.vt.time(), handle, text))


async def test_board_coalesces_updates_and_paces_edits() -> None:
    """Many updates to one message become few edits, one per interval, ending with the newest text."""
    vt = VirtualTime()

    async def scenario() -> list[tuple[float, str, str]]:
        editor = Editor(vt)
        bucket = TokenBucket(PacingPolicy(min_interval=3.0, max_length=100), vt.time)
        board = ProgressBoard(bucket, sleep=vt.sleep)
        for n in range(10):
            board.update(editor, "m1", f"Generating… {n} s")
            await vt.sleep(1.0)
        assert await board.finish(editor, "m1", "The end.")
        await board.close()
        return editor.edits

    edits = await vt.run(scenario())
    times = [t for t, _, _ in edits]
    assert all(b - a >= 3.0 for a, b in itertools.pairwise(times))
    assert "The end." == edits[-1][2]
    assert len(edits) <= 5


async def test_board_waits_out_retry_after_for_a_final_text() -> None:
    """A final text refused twice with retry_after is delivered after those waits."""
    vt = VirtualTime()

    async def scenario() -> tuple[bool, list[tuple[float, str, str]], float]:
        editor = Editor(vt, refuse=[2.0, 5.0])
        bucket = TokenBucket(PacingPolicy(min_interval=0.0, max_length=100), vt.time)
        board = ProgressBoard(bucket, sleep=vt.sleep)
        start = vt.time()
        ok = await board.finish(editor, "m1", "Failed.")
        await board.close()
        return ok, editor.edits, start

    ok, edits, start = await vt.run(scenario())
    assert ok
    assert [(start + 7.0, "m1", "Failed.")] == edits
