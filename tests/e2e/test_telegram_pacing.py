"""Telegram flood control end to end: a long group answer within the limits, and 429s honoured.

The fake enforces about one message per second per chat and twenty per minute per group, with
windows scaled by ``SCALE``; the bot's pacing is scaled the same way.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.telegram_harness import SCALE, TOKEN, running_bot
from tests.fakes.minitoolai import ChatScript
from tests.fakes.telegram import FakeTelegram


async def test_long_group_answer_streams_without_any_flood_violation(tmp_path: Path) -> None:
    """Hundreds of tokens in a group: many edits, never refused by flood control, final text whole."""
    tokens = [f"token{i} " for i in range(200)]
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.005))
        group = h.tg.supergroup("Busy")
        alice = h.tg.user("Alice", "alice")
        h.tg.user_message(group, alice, "@minitoolai_bot talk")
        await h.answered(group["id"], within=15)

        edits = [r for r in h.tg.calls("editMessageText") if r.ok]
    assert [] == h.tg.violations
    assert len(edits) >= 10, "the answer was shown growing, not just at the end"
    assert ["".join(tokens).strip()] == h.bot_texts(group["id"])


async def test_two_answers_in_one_group_share_its_budget(tmp_path: Path) -> None:
    """Two people ask at once in one group (per-user context): both stream, still no violation."""
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=[f"a{i} " for i in range(150)], delay=0.005))
        h.ai.chat_scripts.append(ChatScript(tokens=[f"b{i} " for i in range(150)], delay=0.005))
        group = h.tg.supergroup("Busy")
        alice, bob = h.tg.user("Alice", "alice"), h.tg.user("Bob", "bob")
        h.tg.make_admin(group, alice)
        h.tg.user_message(group, alice, "/context user")
        await h.tg.wait_for(lambda r: r.method == "sendMessage" and "own conversation" in r.params["text"])
        mark = len(h.tg.requests)
        h.tg.user_message(group, alice, "@minitoolai_bot one")
        h.tg.user_message(group, bob, "@minitoolai_bot two")
        await h.all_answered(group["id"], 2, start=mark, within=15)

        texts = h.bot_texts(group["id"])
    assert [] == h.tg.violations
    expected = {"".join(f"{who}{i} " for i in range(150)).strip() for who in "ab"}
    assert expected <= set(texts)


async def test_retry_after_is_honoured_and_the_final_text_still_arrives(tmp_path: Path) -> None:
    """Two 429s on edits: the bot waits at least retry_after each time, and the final text is whole."""
    retry_after = 0.3
    tokens = [f"w{i} " for i in range(120)]

    def fake() -> FakeTelegram:
        return FakeTelegram(token=TOKEN, time_scale=SCALE, retry_after_seconds=retry_after)

    async with running_bot(tmp_path, fake=fake) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.005))
        h.tg.fail_next("editMessageText", 429, "Too Many Requests: retry after 1", retry_after, times=2)
        group = h.tg.supergroup("Limited")
        alice = h.tg.user("Alice", "alice")
        h.tg.user_message(group, alice, "@minitoolai_bot go")
        await h.answered(group["id"], within=15)

        posts = [
            r
            for r in h.tg.requests
            if r.method in ("sendMessage", "editMessageText", "editMessageReplyMarkup")
            and r.params.get("chat_id") == group["id"]
        ]
    refused = [i for i, r in enumerate(posts) if r.status == 429]
    assert 2 == len(refused)
    for i in refused:
        assert posts[i + 1].at - posts[i].at >= retry_after, "the next request waited out retry_after"
    assert ["".join(tokens).strip()] == h.bot_texts(group["id"])
