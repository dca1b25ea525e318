"""Telegram commands, buttons, pictures, errors and the webhook, end to end against the fakes."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from tests.e2e.telegram_harness import TOKEN, free_port, running_bot
from tests.fakes.minitoolai import ChatScript
from tests.fakes.telegram import RecordedRequest
from tests.fakes.telegram_media import png_bytes

STOP = "stop"
REGENERATE = "regen"


def _reply_containing(needle: str) -> Callable[[RecordedRequest], bool]:
    return lambda r: r.method == "sendMessage" and r.ok and needle in r.params["text"]


def decoded(urls: list[str]) -> list[bytes]:
    return [base64.b64decode(url.partition(",")[2]) for url in urls]


def same_pixels(data: bytes) -> tuple[tuple[int, int], bytes]:
    """A picture's size and RGB pixels: what survives the bot's lossless re-encoding of a PNG."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size, image.convert("RGB").tobytes()


def _buttons(markup: object) -> list[str]:
    assert isinstance(markup, dict)
    return [button["callback_data"] for row in markup["inline_keyboard"] for button in row]


async def test_commands_are_registered_at_start(tmp_path: Path) -> None:
    """setMyCommands lists the chat, picture, settings, credit and admin commands."""
    async with running_bot(tmp_path) as h:
        registered = {c["command"] for commands in h.tg.commands.values() for c in commands}
    expected = {"start", "help", "ask", "imagine", "reset", "model", "system", "credits", "usage", "prices"}
    assert expected <= registered
    assert {"grant", "take", "setbalance", "pool", "spending"} <= registered


async def test_a_restart_with_the_same_menus_registers_nothing(tmp_path: Path) -> None:
    """The menus' hash is kept in the database: the same menus are not sent again (a restart, or
    another worker on the same database)."""
    menus = ("setMyCommands", "setMyDescription", "setMyShortDescription")
    async with running_bot(tmp_path) as h:
        first = [r.method for r in h.tg.requests if r.method in menus and r.ok]
    async with running_bot(tmp_path) as h:
        again = [r.method for r in h.tg.requests if r.method in menus]
    assert set(first) == set(menus) and len(first) % 3 == 0
    assert [] == again


async def test_stop_button_ends_the_answer_and_offers_regenerate(tmp_path: Path) -> None:
    """Pressing Stop while a group answer streams stops the upstream stream and keeps what was written."""
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=[f"slow{i} " for i in range(400)], delay=0.02))
        group = h.tg.supergroup("Stoppers")
        alice = h.tg.user("Alice", "alice")
        h.tg.user_message(group, alice, "@minitoolai_bot write forever")
        first = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)
        assert [STOP] == _buttons(first.params["reply_markup"])

        h.tg.callback_query(alice, first.result, STOP)
        await h.answered(group["id"])
        await h.ai.wait_cancelled(1)

        final = h.tg.messages(group["id"])[-1]
        answers = list(h.tg.callback_answers.values())
    assert [REGENERATE] == _buttons(final.reply_markup)
    assert (final.text or "").startswith("slow0 ")
    assert (final.text or "").endswith("Stopped.")
    assert "slow399" not in (final.text or "")
    assert ["Stopping."] == [a.get("text") for a in answers]


async def test_someone_else_cannot_stop_an_answer_but_an_admin_can(tmp_path: Path) -> None:
    """Bob (a member) cannot stop Alice's answer; the group's admin can."""
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=[f"slow{i} " for i in range(400)], delay=0.02))
        group = h.tg.supergroup("Stoppers")
        alice, bob, carol = h.tg.user("Alice", "alice"), h.tg.user("Bob"), h.tg.user("Carol")
        h.tg.make_admin(group, carol)
        h.tg.user_message(group, alice, "@minitoolai_bot write forever")
        first = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)

        refused = h.tg.callback_query(bob, first.result, STOP)
        await h.tg.wait_for(
            lambda r: r.method == "answerCallbackQuery" and r.params["callback_query_id"] == refused["id"]
        )
        h.tg.callback_query(carol, first.result, STOP)
        await h.answered(group["id"])

        answers = [a.get("text") for a in h.tg.callback_answers.values()]
    assert "Only the person who asked, or an admin, can stop it." == answers[0]
    assert "Stopping." == answers[1]


async def test_regenerate_button_answers_the_last_message_again(tmp_path: Path) -> None:
    """Regenerate sends the same prompt again and shows the new answer."""
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=["First try."]))
        h.ai.chat_scripts.append(ChatScript(tokens=["Second try."]))
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "A joke please")
        done = await h.answered(chat["id"])

        mark = len(h.tg.requests)
        h.tg.callback_query(alice, done.result, REGENERATE)
        await h.answered(chat["id"], start=mark)

        bodies = h.chat_requests()
    assert 2 == len(bodies)
    assert bodies[0]["messages"] == bodies[1]["messages"]
    assert ["First try.", "Second try."] == h.bot_texts(chat["id"])


async def test_model_command_offers_an_inline_keyboard_that_switches_the_model(tmp_path: Path) -> None:
    """/model shows a button per model; pressing one switches the model for the next answers."""
    async with running_bot(tmp_path) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "/model")
        menu = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)
        assert "model:gpt-4o" in _buttons(menu.params["reply_markup"])

        h.tg.callback_query(alice, menu.result, "model:gpt-4o")
        await h.tg.wait_for(lambda r: r.method == "editMessageText" and r.ok)
        h.tg.user_message(chat, alice, "Hello")
        await h.answered(chat["id"])

        model = h.chat_requests()[0]["model"]
    assert "gpt-4o" == model
    assert "From now on I answer here with gpt-4o." == h.bot_texts(chat["id"])[0]


async def test_group_settings_need_a_group_admin(tmp_path: Path) -> None:
    """A member's /model gets a short refusal; an admin's (per getChatMember) works."""
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("Club")
        alice, bob = h.tg.user("Alice"), h.tg.user("Bob")
        h.tg.make_admin(group, alice, owner=True)
        h.tg.user_message(group, bob, "/model gpt-4.1")
        refusal = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)
        h.tg.user_message(group, alice, "/model gpt-4.1")
        done = await h.tg.wait_for(
            lambda r: r.method == "sendMessage" and r.ok and "From now on" in r.params["text"]
        )

    assert "Only admins" in refusal.params["text"]
    assert "gpt-4.1" in done.params["text"]
    assert len(refusal.params["text"]) < 200


async def test_photo_with_caption_is_sent_as_data_url_and_the_token_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The photo's bytes flow through getFile into a data: URL; no file link or token leaves."""
    caplog.set_level(logging.DEBUG)
    picture = png_bytes(64, 48)
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=["A small picture."]))
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, photo=picture, caption="What is this?")
        await h.answered(chat["id"])

        got = [r for r in h.tg.calls("getFile") if r.ok]
        body = h.chat_requests()[0]
    parts = body["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
    assert 1 == len(got)
    assert [same_pixels(picture)] == [same_pixels(sent) for sent in decoded(urls)]
    assert all(url.startswith("data:image/png;base64,") for url in urls)
    assert "What is this?" in str(parts)
    assert "/file/bot" not in str(body) and TOKEN not in str(body)
    assert TOKEN not in caplog.text
    assert "A small picture." == h.bot_texts(chat["id"])[0]


async def test_reply_to_a_photo_in_a_group_asks_about_that_photo(tmp_path: Path) -> None:
    """In a group, mentioning the bot in a reply to someone's photo sends that photo."""
    picture = png_bytes(30, 20)
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("Pics")
        alice, bob = h.tg.user("Alice"), h.tg.user("Bob")
        shared = h.tg.user_message(group, alice, photo=picture, caption="look")
        h.tg.user_message(group, bob, "@minitoolai_bot what is in it?", reply_to=shared)
        await h.answered(group["id"])

        parts = h.chat_requests()[0]["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
    assert [same_pixels(picture)] == [same_pixels(sent) for sent in decoded(urls)]


async def test_user_errors_get_short_clear_replies(tmp_path: Path) -> None:
    """Bad admin arguments, a too-large picture and an unknown model: one short sentence each."""
    async with running_bot(tmp_path) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "/model gpt-99")
        h.tg.user_message(chat, alice, "/grant lots")
        h.tg.user_message(
            chat, alice, document=b"\x89PNG" + bytes(21 * 1024 * 1024), document_name="big.png", caption="hi"
        )
        for needle in ("gpt-99", "/grant", "too large"):
            await h.tg.wait_for(_reply_containing(needle))

        replies = h.bot_texts(chat["id"])
    assert 3 == len(replies)
    assert all(len(r) < 300 for r in replies)
    assert [] == h.chat_requests()
    assert [] == h.tg.calls("getFile"), "a picture over the limit is refused before downloading"


async def test_without_credit_the_person_is_told_and_nothing_goes_upstream(tmp_path: Path) -> None:
    """A zero balance: the insufficient-credits message, and no request reaches MiniToolAI."""
    async with running_bot(tmp_path, grant="0") as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "Hello?")
        reply = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)

    assert "but your balance is" in reply.params["text"]
    assert [] == h.chat_requests()


async def test_webhook_mode_checks_the_secret_token_header(tmp_path: Path) -> None:
    """With TELEGRAM_WEBHOOK_URL set, updates come by POST; one without the secret header gets 403."""
    port = free_port()
    async with running_bot(
        tmp_path,
        telegram_webhook_url="https://bot.example.com/telegram/hook",
        telegram_webhook_secret="s3cret-header-value",
        telegram_webhook_listen=f"127.0.0.1:{port}",
    ) as h:
        set_hook = h.tg.calls("setWebhook")[0]
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        message = h.tg.user_message(chat, alice, "Hi by webhook")
        update = {"update_id": 1, "message": message}
        url = f"http://127.0.0.1:{port}/telegram/hook"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as refused:
                refused_status = refused.status
            async with http.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            ) as wrong:
                wrong_status = wrong.status
            assert [] == h.chat_requests()
            headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-header-value"}
            async with http.post(url, json=update, headers=headers) as accepted:
                accepted_status = accepted.status
        await h.answered(chat["id"])

        polls = h.tg.calls("getUpdates")
    assert "https://bot.example.com/telegram/hook" == set_hook.params["url"]
    assert "s3cret-header-value" == set_hook.params["secret_token"]
    assert (403, 403, 200) == (refused_status, wrong_status, accepted_status)
    assert [] == polls
    assert 1 == len(h.chat_requests())


async def test_typing_shows_until_the_first_token_and_start_greets(tmp_path: Path) -> None:
    """While the model has not started, the chat shows "typing"; /start answers with the help text."""
    first_token = asyncio.Event()
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=["Ready."], wait_event=first_token))
        group = h.tg.forum("Topics")
        topic = h.tg.create_topic(group, "Q&A")
        alice = h.tg.user("Alice")
        h.tg.user_message(group, alice, "/ask are you there?", thread_id=topic)
        typing = await h.tg.wait_for(lambda r: r.method == "sendChatAction")
        first_token.set()
        await h.answered(group["id"])
        h.tg.user_message(group, alice, "/start", thread_id=topic)
        hello = await h.tg.wait_for(
            lambda r: r.method == "sendMessage" and r.ok and "/imagine" in r.params["text"]
        )

    assert typing.ok and "typing" == typing.params["action"]
    assert topic == typing.params["message_thread_id"]
    assert topic == hello.params["message_thread_id"]


async def test_stop_command_stops_a_private_answer(tmp_path: Path) -> None:
    """Drafts carry no buttons, so /stop ends an answer streaming in a private chat."""
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=[f"slow{i} " for i in range(400)], delay=0.02))
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "go on and on")
        await h.tg.wait_for(lambda r: r.method == "sendMessageDraft" and r.ok)
        h.tg.user_message(chat, alice, "/stop")
        await h.answered(chat["id"])
        await h.ai.wait_cancelled(1)

        text = h.bot_texts(chat["id"])[0]
    assert text.startswith("slow0 ") and text.endswith("Stopped.")


async def test_an_unexpected_failure_is_logged_and_answered_politely(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram failing a download: the person gets the generic apology, the log the traceback."""
    async with running_bot(tmp_path) as h:
        h.tg.fail_next("getFile", 500, "Internal Server Error")
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, photo=png_bytes(8, 8), caption="and this?")
        sorry = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)
        h.tg.user_message(chat, alice, "still there?")
        await h.answered(chat["id"])

    assert "Something went wrong on my side" in sorry.params["text"]
    failures = [r for r in caplog.records if r.name == "adapters.telegram.handlers" and r.exc_info]
    assert 1 == len(failures)
    assert TOKEN not in caplog.text


async def test_credits_asked_in_a_group_arrive_privately_when_the_person_has_a_chat_with_the_bot(
    tmp_path: Path,
) -> None:
    """/credits in a group: the balance goes to the asker's private chat, the group only gets a pointer."""
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("Club")
        alice = h.tg.user("Alice")
        h.tg.private_chat(alice)
        h.tg.user_message(group, alice, "/credits")
        pointer = await h.tg.wait_for(_reply_containing("private message"))
        private = [r for r in h.tg.calls("sendMessage") if r.ok and r.params["chat_id"] == alice["id"]]

    assert group["id"] == pointer.params["chat_id"]
    assert 1 == len(private)
    assert "Balance" in private[0].params["text"]


async def test_credits_asked_in_a_group_by_someone_the_bot_cannot_write_to_are_answered_there(
    tmp_path: Path,
) -> None:
    """Telegram forbids writing first to a person who never opened the bot: the balance goes to the group."""
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("Club")
        bob = h.tg.user("Bob")
        h.tg.user_message(group, bob, "/credits")
        answer = await h.tg.wait_for(_reply_containing("Balance"))

    assert group["id"] == answer.params["chat_id"]


async def test_an_unreachable_ai_is_explained_once_and_nothing_is_charged(tmp_path: Path) -> None:
    """MiniToolAI failing before any token: exactly one short reply, and nothing spent."""
    async with running_bot(tmp_path) as h:
        h.ai.fail_next(503, "overloaded", times=3, path="/api/chat-completions/")
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "Hello?")
        await h.tg.wait_for(_reply_containing("unavailable"))
        h.tg.user_message(chat, alice, "/credits")
        balance = await h.tg.wait_for(_reply_containing("Balance"))
        replies = [r for r in h.tg.calls("sendMessage") if r.ok and r.params["chat_id"] == chat["id"]]

    assert 1 == sum("unavailable" in r.params["text"] for r in replies)
    assert "Spent today: $0.00" in balance.params["text"]
