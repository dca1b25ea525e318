"""Who and where on Telegram, end to end: the owner's lists, run-time overrides, switches, reply-all.

The fakes outlive the bot so that a restart is the real composition root started again over the
same SQLite file. A refused request must reach no MiniToolAI call and open no account.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

import storage
from bot.__main__ import serve
from bot.access.policy import CHAT_REFUSAL, PRIVATE_REFUSAL, USER_REFUSAL
from bot.access.service import CHAT_OFF, IMAGES_OFF
from bot.ports import Account
from bot.settings import Settings
from tests.e2e.telegram_harness import CHAT_PATH, SCALE, TOKEN, _started
from tests.e2e.test_console import bot_env, run_bot
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI
from tests.fakes.telegram import FakeTelegram, RecordedRequest

JSON = dict[str, Any]


@contextlib.asynccontextmanager
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeMiniToolAI]]:
    async with FakeMiniToolAI() as ai, FakeTelegram(token=TOKEN, time_scale=SCALE) as tg:
        yield tg, ai


@contextlib.asynccontextmanager
async def bot(tg: FakeTelegram, ai: FakeMiniToolAI, tmp_path: Path, **settings: Any) -> AsyncIterator[None]:
    """One run of the bot over ``tmp_path``'s database, stopped (cleanly) on exit."""
    config = Settings(
        _env_file=None,  # type: ignore[call-arg]
        minitoolai_api_key=SecretStr(ai.api_key),
        minitoolai_base_url=ai.base_url,
        telegram_token=SecretStr(TOKEN),
        telegram_api_base_url=tg.base_url,
        telegram_file_base_url=tg.base_file_url,
        database_url=database(tmp_path),
        starting_grant_usd=Decimal(1),
        telegram_pace_scale=SCALE,
        **settings,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop), name="bot")
    try:
        await _started(tg, config, task)
        yield
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.sqlite3'}"


async def balance(tmp_path: Path, user: JSON) -> int | None:
    """The user's balance in the bot's database; None when no account was ever opened."""
    store = await storage.open_store(database(tmp_path))
    try:
        return await store.balance(Account("telegram", str(user["id"])))
    finally:
        await store.close()


def sent(chat: JSON, text: str | None = None) -> Callable[[RecordedRequest], bool]:
    def match(r: RecordedRequest) -> bool:
        return (
            r.ok
            and r.method == "sendMessage"
            and r.params.get("chat_id") == chat["id"]
            and (text is None or text in str(r.params.get("text")))
        )

    return match


def answered(chat: JSON) -> Callable[[RecordedRequest], bool]:
    """The call that finished an answer in ``chat`` (it carries the Regenerate button)."""
    return lambda r: (
        r.ok
        and r.method in ("sendMessage", "editMessageText", "editMessageReplyMarkup")
        and r.params.get("chat_id") == chat["id"]
        and "regen" in str(r.params.get("reply_markup"))
    )


def bot_texts(tg: FakeTelegram, chat: JSON) -> list[str]:
    return tg.messages_in(chat["id"], from_bot=True)


def ids(*users: JSON) -> str:
    return ",".join(f"telegram:{u['id']}" for u in users)


def chat_requests(ai: FakeMiniToolAI) -> int:
    return len(ai.requests_to(CHAT_PATH))


async def test_a_private_chat_outside_the_allow_list_gets_one_sentence_and_no_account(tmp_path: Path) -> None:
    """ALLOWED_USERS: an allowed user is answered; anyone else gets the private sentence, no call, no grant."""
    async with fakes() as (tg, ai):
        alice, mallory = tg.user("Alice"), tg.user("Mallory")
        alice_chat, mallory_chat = tg.private_chat(alice), tg.private_chat(mallory)
        async with bot(tg, ai, tmp_path, allowed_users=ids(alice)):
            tg.user_message(mallory_chat, mallory, "Hello, may I?")
            await tg.wait_for(sent(mallory_chat, PRIVATE_REFUSAL))
            tg.user_message(mallory_chat, mallory, "/credits")
            await tg.wait_for(sent(mallory_chat), start=len(tg.requests))
            tg.user_message(alice_chat, alice, "Hello")
            await tg.wait_for(answered(alice_chat))
        assert [PRIVATE_REFUSAL, PRIVATE_REFUSAL] == bot_texts(tg, mallory_chat)
        assert 1 == chat_requests(ai)
    assert await balance(tmp_path, mallory) is None
    assert await balance(tmp_path, alice) is not None


async def test_a_group_outside_the_allow_list_hears_once_then_nothing(tmp_path: Path) -> None:
    """ALLOWED_CHATS: the allowed group is served; another says "not enabled" once, then stays quiet."""
    async with fakes() as (tg, ai):
        alice = tg.user("Alice", "alice")
        ours, theirs = tg.supergroup("Ours"), tg.supergroup("Theirs")
        async with bot(tg, ai, tmp_path, allowed_chats=f"telegram:{ours['id']}"):
            tg.user_message(theirs, alice, "@minitoolai_bot hello")
            await tg.wait_for(sent(theirs, CHAT_REFUSAL))
            tg.user_message(theirs, alice, "/ask still there?")
            tg.user_message(theirs, alice, "@minitoolai_bot hello again")
            tg.user_message(theirs, alice, "just chatting")
            tg.user_message(ours, alice, "@minitoolai_bot hello")
            await tg.wait_for(answered(ours))
        assert [CHAT_REFUSAL] == bot_texts(tg, theirs)
        assert 1 == chat_requests(ai)
    # Alice was served in our group: her account exists there, and nowhere else was one opened.
    assert await balance(tmp_path, alice) is not None


async def test_a_block_wins_over_an_allowed_group_and_owners_always_pass(tmp_path: Path) -> None:
    """BLOCKED_USERS beats ALLOWED_CHATS; a BOT_ADMIN_IDS owner is served even when blocked and in a closed chat."""
    async with fakes() as (tg, ai):
        alice, bob, owner = tg.user("Alice"), tg.user("Bob"), tg.user("Owner")
        group, closed = tg.supergroup("Allowed"), tg.supergroup("Closed")
        settings = {
            "allowed_chats": f"telegram:{group['id']}",
            "blocked_users": ids(bob, owner),
            "blocked_chats": f"telegram:{closed['id']}",
            "bot_admin_ids": ids(owner),
        }
        async with bot(tg, ai, tmp_path, **settings):
            tg.user_message(group, bob, "/ask hello")
            await tg.wait_for(sent(group, USER_REFUSAL))
            tg.user_message(group, bob, "/ask hello again")
            tg.user_message(closed, owner, "/ask owner here")
            await tg.wait_for(answered(closed))
            tg.user_message(group, alice, "/ask hello")
            await tg.wait_for(answered(group))
        assert [USER_REFUSAL] == bot_texts(tg, group)[:1]
        assert 2 == chat_requests(ai)
    assert await balance(tmp_path, bob) is None


async def test_private_chats_can_be_closed_to_all_but_owners(tmp_path: Path) -> None:
    """ALLOW_PRIVATE=false refuses DMs (even to an allowed user); groups and owners are still served."""
    async with fakes() as (tg, ai):
        alice, owner = tg.user("Alice", "alice"), tg.user("Owner")
        group = tg.supergroup("Group")
        settings = {"allow_private": False, "bot_admin_ids": ids(owner), "allowed_users": ids(alice)}
        async with bot(tg, ai, tmp_path, **settings):
            tg.user_message(tg.private_chat(alice), alice, "hi")
            await tg.wait_for(sent(tg.private_chat(alice), PRIVATE_REFUSAL))
            tg.user_message(tg.private_chat(owner), owner, "hi")
            await tg.wait_for(answered(tg.private_chat(owner)))
            tg.user_message(group, alice, "@minitoolai_bot hi")
            await tg.wait_for(answered(group))
        assert 2 == chat_requests(ai)


async def test_run_time_block_and_allow_survive_a_restart(tmp_path: Path) -> None:
    """/block and /allow by an owner apply at once, are listed by /access, and hold after a restart."""
    async with fakes() as (tg, ai):
        owner, alice, bob = tg.user("Owner"), tg.user("Alice"), tg.user("Bob")
        group = tg.supergroup("Friends")
        desk = tg.private_chat(owner)
        async with bot(tg, ai, tmp_path, bot_admin_ids=ids(owner)):
            tg.user_message(desk, owner, f"/block user {alice['id']}")
            await tg.wait_for(sent(desk, f"User telegram:{alice['id']} is blocked now."))
            # A member cannot change access.
            tg.user_message(tg.private_chat(bob), bob, f"/unblock user {alice['id']}")
            await tg.wait_for(sent(tg.private_chat(bob), "Only the bot's owner"))
            tg.user_message(desk, owner, f"/allow chat {group['id']}")
            await tg.wait_for(sent(desk, f"Chat telegram:{group['id']} is allowed now."))
        async with bot(tg, ai, tmp_path, bot_admin_ids=ids(owner)):
            tg.user_message(tg.private_chat(alice), alice, "hi")
            await tg.wait_for(sent(tg.private_chat(alice), PRIVATE_REFUSAL))
            # Only the allowed group is served now: Bob's DM is not in the allow-list.
            tg.user_message(tg.private_chat(bob), bob, "hi")
            await tg.wait_for(sent(tg.private_chat(bob), PRIVATE_REFUSAL))
            tg.user_message(group, bob, "/ask hello")
            await tg.wait_for(answered(group))
            tg.user_message(desk, owner, "/access")
            listed = await tg.wait_for(sent(desk, "Blocked users:"))
            tg.user_message(desk, owner, f"/unblock user {alice['id']}")
            await tg.wait_for(sent(desk, "is neither allowed nor blocked now."))
            tg.user_message(group, alice, "/ask me too")
            await tg.wait_for(answered(group), start=len(tg.requests))
        assert f"telegram:{alice['id']}" in listed.params["text"]
        assert f"Allowed chats: telegram:{group['id']}" in listed.params["text"]
        assert 2 == chat_requests(ai)
    assert await balance(tmp_path, alice) is not None  # served only after the unblock


async def test_a_refused_button_press_gets_an_alert_and_no_new_answer(tmp_path: Path) -> None:
    """A user blocked after an answer cannot press Regenerate under it: an alert, no MiniToolAI call."""
    async with fakes() as (tg, ai):
        owner, alice = tg.user("Owner"), tg.user("Alice")
        chat, desk = tg.private_chat(alice), tg.private_chat(owner)
        async with bot(tg, ai, tmp_path, bot_admin_ids=ids(owner)):
            tg.user_message(chat, alice, "hi")
            done = await tg.wait_for(answered(chat))
            tg.user_message(desk, owner, f"/block user {alice['id']}")
            await tg.wait_for(sent(desk, "is blocked now."))
            query = tg.callback_query(alice, done.result, "regen")
            await tg.wait_for(
                lambda r: r.method == "answerCallbackQuery" and r.params["callback_query_id"] == query["id"]
            )
        assert PRIVATE_REFUSAL == tg.callback_answers[query["id"]].get("text")
        assert 1 == chat_requests(ai)


async def test_group_admins_switch_chat_and_pictures_off_and_on(tmp_path: Path) -> None:
    """/disable chat quiets mentions (said once) and refuses /ask; /disable images refuses /imagine; /enable restores."""
    async with fakes() as (tg, ai):
        admin, alice = tg.user("Admin"), tg.user("Alice", "alice")
        group = tg.supergroup("Group")
        tg.make_admin(group, admin)
        async with bot(tg, ai, tmp_path):
            tg.user_message(group, alice, "/disable chat")
            await tg.wait_for(sent(group, "Only admins"))
            tg.user_message(group, admin, "/disable chat")
            await tg.wait_for(sent(group, "Chat off here."))
            tg.user_message(group, admin, "/disable images")
            await tg.wait_for(sent(group, "Pictures off here."))
            tg.user_message(group, alice, "@minitoolai_bot hello")
            await tg.wait_for(sent(group, CHAT_OFF))
            tg.user_message(group, alice, "@minitoolai_bot hello?")
            tg.user_message(group, alice, "/ask hello")
            await tg.wait_for(sent(group, CHAT_OFF), start=len(tg.requests))
            tg.user_message(group, alice, "/imagine a fox")
            await tg.wait_for(sent(group, IMAGES_OFF))
            assert 0 == chat_requests(ai)
            tg.user_message(group, admin, "/enable chat")
            await tg.wait_for(sent(group, "Chat on here."))
            tg.user_message(group, alice, "@minitoolai_bot hello")
            await tg.wait_for(answered(group))
        texts = bot_texts(tg, group)
        assert 2 == texts.count(CHAT_OFF)  # the mention's notice once, and the answer to /ask
        assert 1 == chat_requests(ai)
        assert [] == ai.requests_to("/api/texttoimage/")


async def test_a_reply_all_group_answers_every_message(tmp_path: Path) -> None:
    """/replyall on makes the bot answer messages that do not address it; off restores mention-only."""
    async with fakes() as (tg, ai):
        admin, alice = tg.user("Admin"), tg.user("Alice")
        group, other = tg.supergroup("Chatty"), tg.supergroup("Quiet")
        tg.make_admin(group, admin)
        ai.chat_scripts.extend([ChatScript(tokens=["Heard you."]), ChatScript(tokens=["Sure."])])
        async with bot(tg, ai, tmp_path):
            tg.user_message(tg.private_chat(alice), alice, "/replyall on")
            await tg.wait_for(
                sent(tg.private_chat(alice), "In a private chat I already answer every message.")
            )
            tg.user_message(group, admin, "/replyall on")
            await tg.wait_for(sent(group, "I now answer every message here."))
            tg.user_message(other, alice, "talking among ourselves")
            tg.user_message(group, alice, "what is 2 + 2?")
            await tg.wait_for(answered(group))
            tg.user_message(group, admin, "/replyall off")
            await tg.wait_for(sent(group, "only when addressed"))
            tg.user_message(group, alice, "and now?")
            tg.user_message(group, alice, "@minitoolai_bot and now?")
            await tg.wait_for(answered(group), start=len(tg.requests))
        prompts = [r["messages"][-1]["content"] for r in ai.requests_to(CHAT_PATH) for r in [r.json]]
        assert 2 == len(prompts)
        assert "what is 2 + 2?" in prompts[0]
        assert "and now?" in prompts[1]
        assert [] == bot_texts(tg, other)


async def test_an_owner_stops_someone_elses_answer_in_any_group(tmp_path: Path) -> None:
    """BOT_ADMIN_IDS are admins everywhere: Stop on someone else's answer works for them."""
    async with fakes() as (tg, ai):
        owner, alice = tg.user("Owner"), tg.user("Alice", "alice")
        group = tg.supergroup("Somewhere")
        ai.chat_scripts.append(ChatScript(tokens=[f"slow{i} " for i in range(400)], delay=0.02))
        async with bot(tg, ai, tmp_path, bot_admin_ids=ids(owner)):
            tg.user_message(group, alice, "@minitoolai_bot write forever")
            first = await tg.wait_for(sent(group))
            tg.callback_query(owner, first.result, "stop")
            await tg.wait_for(answered(group))
            await ai.wait_cancelled(1)
        assert ["Stopping."] == [a.get("text") for a in tg.callback_answers.values()]


async def test_an_owner_deletes_someone_elses_picture_a_member_cannot(tmp_path: Path) -> None:
    """Delete under Alice's picture: refused to Bob, done for a BOT_ADMIN_IDS owner (no group admin)."""
    async with fakes() as (tg, ai):
        owner, alice, bob = tg.user("Owner"), tg.user("Alice"), tg.user("Bob")
        group = tg.supergroup("Artists")
        fast = {"image_poll_initial_seconds": 0.01, "image_poll_max_seconds": 0.02}
        async with bot(tg, ai, tmp_path, bot_admin_ids=ids(owner), **fast):
            tg.user_message(group, alice, "/imagine a lighthouse --steps 4")
            photo = await tg.wait_for(lambda r: r.method == "sendPhoto" and r.ok, 10)
            markup = photo.params["reply_markup"]
            delete = next(
                b["callback_data"]
                for row in markup["inline_keyboard"]
                for b in row
                if "img:d:" in b["callback_data"]
            )
            refused = tg.callback_query(bob, photo.result, delete)
            await tg.wait_for(
                lambda r: r.method == "answerCallbackQuery" and r.params["callback_query_id"] == refused["id"]
            )
            assert not [
                r
                for r in tg.requests
                if r.method == "deleteMessage" and r.params["message_id"] == photo.result["message_id"]
            ]
            tg.callback_query(owner, photo.result, delete)
            photo_id = photo.result["message_id"]
            await tg.wait_for(
                lambda r: r.method == "deleteMessage" and r.params["message_id"] == photo_id, 10
            )
        assert "Deleted." != tg.callback_answers[refused["id"]].get("text")


async def test_a_block_made_on_the_command_line_is_obeyed_by_the_bot(tmp_path: Path) -> None:
    """python -m bot access block user ... before the start: the running bot refuses that user."""
    async with fakes() as (tg, ai):
        alice, bob = tg.user("Alice"), tg.user("Bob")
        env = bot_env(tmp_path, DATABASE_URL=database(tmp_path))
        code, _, err = await run_bot(tmp_path, env, "", "access", "block", "user", f"telegram:{alice['id']}")
        assert 0 == code, err
        async with bot(tg, ai, tmp_path):
            tg.user_message(tg.private_chat(alice), alice, "hi")
            await tg.wait_for(sent(tg.private_chat(alice), PRIVATE_REFUSAL))
            tg.user_message(tg.private_chat(bob), bob, "hi")
            await tg.wait_for(answered(tg.private_chat(bob)))
        assert 1 == chat_requests(ai)


async def test_reset_of_a_shared_group_conversation_needs_an_admin(tmp_path: Path) -> None:
    """A member's /reset in a group is refused and forgets nothing; the group admin's /reset forgets."""
    async with fakes() as (tg, ai):
        admin, alice = tg.user("Admin"), tg.user("Alice", "alice")
        group = tg.supergroup("Shared")
        tg.make_admin(group, admin)
        async with bot(tg, ai, tmp_path):
            tg.user_message(group, alice, "/ask remember the number 7")
            await tg.wait_for(answered(group))
            tg.user_message(group, alice, "/reset")
            await tg.wait_for(sent(group, "Only admins"))
            tg.user_message(group, alice, "/ask which number?")
            await tg.wait_for(answered(group), start=len(tg.requests))
            tg.user_message(group, admin, "/reset")
            await tg.wait_for(sent(group, "Done: I forgot this conversation."))
            tg.user_message(group, alice, "/ask which number now?")
            await tg.wait_for(answered(group), start=len(tg.requests))
        prompts = [
            [m["content"] for m in r.json["messages"] if m["role"] == "user"]
            for r in ai.requests_to(CHAT_PATH)
        ]
        assert any("remember the number 7" in text for text in prompts[1])
        assert not any("remember the number 7" in text for text in prompts[2])
