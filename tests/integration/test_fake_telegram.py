"""The fake Telegram Bot API, driven by the real python-telegram-bot 22.8.

If the real library can poll, send, edit, upload and download against the fake, and gets the
exceptions Telegram would cause (RetryAfter, BadRequest), the fake is faithful enough for the
adapter's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import html
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, EndPointNotFound, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_media import png_bytes

TOKEN = "123:ABC"
AnyApp = Application[Any, Any, Any, Any, Any, Any]


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PTB_TIMEDELTA, PTB 22.8 warns inside RetryAfter.__init__ (an error here)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A fake with flood control off, for tests about everything else."""
    async with FakeTelegram(
        token=TOKEN, per_chat_interval=0, group_limit=None, global_per_second=None
    ) as fake:
        yield fake


def make_bot(tg: FakeTelegram, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=tg.base_url, base_file_url=tg.base_file_url)


@contextlib.asynccontextmanager
async def running_app(
    tg: FakeTelegram, *handlers: BaseHandler[Any, Any, Any], limiter: AIORateLimiter | None = None
) -> AsyncIterator[AnyApp]:
    """An Application polling the fake, with the manual lifecycle the bot uses."""
    builder = ApplicationBuilder().token(tg.token).base_url(tg.base_url)
    builder = builder.base_file_url(tg.base_file_url)
    app: AnyApp = (builder if limiter is None else builder.rate_limiter(limiter)).build()
    for handler in handlers:
        app.add_handler(handler)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=10))
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


# --------------------------------------------------------------------------- the application


async def test_application_answers_an_injected_message_with_html(tg: FakeTelegram) -> None:
    """A polled user message reaches a handler whose HTML reply is stored as text + entities."""

    async def greet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_user is not None and update.effective_chat is not None
        name = html.escape(update.effective_user.first_name)
        await context.bot.send_message(
            update.effective_chat.id, f"Hello <b>{name}</b> &amp; welcome", ParseMode.HTML
        )

    alice = tg.user("A<l>ice", "alice")
    chat = tg.private_chat(alice)
    async with running_app(tg, MessageHandler(filters.TEXT, greet)):
        tg.user_message(chat, alice, "hi")
        sent = await tg.wait_for(lambda r: r.method == "sendMessage")

    assert sent.ok
    assert tg.messages_in(chat["id"]) == ["hi", "Hello A<l>ice & welcome"]
    bot_message = tg.messages(chat["id"])[-1]
    assert list(bot_message.entities) == [{"type": "bold", "offset": 6, "length": 7}]
    assert {"getMe", "deleteWebhook", "getUpdates"} <= {r.method for r in tg.requests}


async def test_handler_edits_its_reply_and_the_fake_keeps_the_latest_text(
    tg: FakeTelegram,
) -> None:
    """send_message returns a real telegram.Message whose edit_text changes the stored text."""

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        reply = await update.message.reply_text("thinking…", do_quote=True)
        edited = await reply.edit_text("<i>done</i>", parse_mode=ParseMode.HTML)
        assert isinstance(edited, Message)

    bob = tg.user("Bob")
    chat = tg.private_chat(bob)
    async with running_app(tg, MessageHandler(filters.TEXT, answer)):
        question = tg.user_message(chat, bob, "question")
        await tg.wait_for(lambda r: r.method == "editMessageText")

    reply = tg.messages(chat["id"])[-1]
    assert (reply.text, reply.history, reply.from_bot) == ("done", ["thinking…"], True)
    assert question["message_id"] == reply.reply_to


async def test_group_mention_arrives_with_a_mention_entity(tg: FakeTelegram) -> None:
    """'@botusername' in a group message carries a mention entity PTB can filter and parse."""
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def on_mention(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        mentions = update.message.parse_entities([MessageEntity.MENTION])
        await seen.put(next(iter(mentions.values())))

    carol = tg.user("Carol", "carol")
    group = tg.group("friends")
    async with running_app(tg, MessageHandler(filters.Entity(MessageEntity.MENTION), on_mention)):
        tg.user_message(group, carol, "hey @minitoolai_bot, draw a cat")
        mention = await asyncio.wait_for(seen.get(), 5)

    assert mention == "@minitoolai_bot"


async def test_reply_in_a_forum_topic_stays_in_the_topic(tg: FakeTelegram) -> None:
    """Message.reply_text in a topic passes message_thread_id; the fake files it there."""

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text("in the topic")

    dave = tg.user("Dave")
    forum = tg.forum("lab")
    topic = tg.create_topic(forum, "images")
    async with running_app(tg, MessageHandler(filters.TEXT, answer)):
        tg.user_message(forum, dave, "question", thread_id=topic)
        sent = await tg.wait_for(lambda r: r.method == "sendMessage")

    assert topic == sent.params["message_thread_id"]
    assert tg.messages_in(forum["id"], topic) == ["question", "in the topic"]
    assert sent.result["is_topic_message"] is True


async def test_callback_query_is_delivered_and_answered(tg: FakeTelegram) -> None:
    """Pressing an inline button reaches a CallbackQueryHandler that answers and edits markup."""

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert isinstance(query, CallbackQuery)
        await query.answer("regenerating")
        await query.edit_message_reply_markup(None)

    erin = tg.user("Erin")
    chat = tg.private_chat(erin)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("again", callback_data="regen")]])
    async with make_bot(tg) as bot:
        message = await bot.send_message(chat["id"], "a picture", reply_markup=keyboard)
    async with running_app(tg, CallbackQueryHandler(on_button)):
        query = tg.callback_query(erin, message.to_dict(), "regen")
        await tg.wait_for(lambda r: r.method == "editMessageReplyMarkup")

    assert tg.callback_answers[query["id"]]["text"] == "regenerating"
    assert tg.message(chat["id"], message.message_id).reply_markup is None


async def test_user_photo_downloads_through_get_file(tg: FakeTelegram) -> None:
    """A user's photo lists sizes smallest first; get_file + download_to_memory give its bytes."""
    picture = png_bytes(400, 300)
    downloaded: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        largest = update.message.photo[-1]
        buffer = io.BytesIO()
        await (await context.bot.get_file(largest.file_id)).download_to_memory(buffer)
        await downloaded.put(buffer.getvalue())

    frank = tg.user("Frank")
    chat = tg.private_chat(frank)
    async with running_app(tg, MessageHandler(filters.PHOTO, on_photo)):
        message = tg.user_message(chat, frank, photo=picture, caption="what is this?")
        data = await asyncio.wait_for(downloaded.get(), 5)

    assert picture == data
    assert [size["width"] for size in message["photo"]] == [90, 400]


async def test_application_shuts_down_promptly_during_a_long_poll(tg: FakeTelegram) -> None:
    """Stopping the updater and the application ends a pending long poll without hanging."""
    async with asyncio.timeout(5):
        async with running_app(tg):
            await tg.wait_until_polling()
    assert any(r.method == "getUpdates" and r.params.get("timeout") == 0 for r in tg.requests)


# --------------------------------------------------------------------------- flood control


async def test_second_message_inside_the_chat_interval_raises_retry_after() -> None:
    """Two messages in one chat inside per_chat_interval: the second gets 429 RetryAfter."""
    async with FakeTelegram(token=TOKEN, per_chat_interval=60, retry_after_seconds=3) as tg:
        chat = tg.private_chat(tg.user("Gina"))
        async with make_bot(tg) as bot:
            await bot.send_message(chat["id"], "one")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(chat["id"], "two")

        assert dtm.timedelta(seconds=3) == caught.value.retry_after
        assert [(v.method, v.limit) for v in tg.violations] == [("sendMessage", "per_chat")]
        assert tg.calls("sendMessage")[-1].description == "Too Many Requests: retry after 3"


async def test_edits_count_toward_the_group_budget() -> None:
    """In a group, a send plus two edits spend a budget of 3; the next edit gets RetryAfter."""
    async with FakeTelegram(token=TOKEN, per_chat_interval=0, group_limit=3, group_window=60) as tg:
        group = tg.supergroup("busy")
        async with make_bot(tg) as bot:
            message = await bot.send_message(group["id"], "1")
            await message.edit_text("12")
            await message.edit_text("123")
            with pytest.raises(RetryAfter):
                await message.edit_text("1234")

        assert [v.limit for v in tg.violations] == ["group"]
        assert tg.messages_in(group["id"]) == ["123"]


async def test_global_budget_spans_chats() -> None:
    """Messages to different chats share the global budget."""
    async with FakeTelegram(token=TOKEN, per_chat_interval=0, global_per_second=2, global_window=60) as tg:
        chats = [tg.private_chat(tg.user(f"U{i}")) for i in range(3)]
        async with make_bot(tg) as bot:
            await bot.send_message(chats[0]["id"], "a")
            await bot.send_message(chats[1]["id"], "b")
            with pytest.raises(RetryAfter):
                await bot.send_message(chats[2]["id"], "c")
        assert [v.limit for v in tg.violations] == ["global"]


async def test_aio_rate_limiter_reraises_retry_after_by_default() -> None:
    """PTB's AIORateLimiter has no per-private-chat limit and re-raises RetryAfter."""
    async with FakeTelegram(token=TOKEN, per_chat_interval=60) as tg:
        chat = tg.private_chat(tg.user("Hal"))
        async with running_app(tg, limiter=AIORateLimiter()) as app:
            await app.bot.send_message(chat["id"], "one")
            with pytest.raises(RetryAfter):
                await app.bot.send_message(chat["id"], "two")


async def test_aio_rate_limiter_with_retries_waits_out_the_fakes_retry_after() -> None:
    """With max_retries=1 the limiter sleeps retry_after and the retry lands after the interval."""
    async with FakeTelegram(token=TOKEN, per_chat_interval=0.05, retry_after_seconds=0.05) as tg:
        chat = tg.private_chat(tg.user("Ivy"))
        async with running_app(tg, limiter=AIORateLimiter(max_retries=1)) as app:
            await app.bot.send_message(chat["id"], "one")
            await app.bot.send_message(chat["id"], "two")

        accepted = [r.at for r in tg.calls("sendMessage") if r.ok]
        assert tg.messages_in(chat["id"]) == ["one", "two"]
        assert accepted[1] - accepted[0] >= tg.per_chat_interval
        assert len(tg.violations) == 1


# --------------------------------------------------------------------------- text rules


async def test_unchanged_edit_is_refused_as_not_modified(tg: FakeTelegram) -> None:
    """Editing to the same text (trailing whitespace is trimmed) raises 'Message is not modified'."""
    chat = tg.private_chat(tg.user("Jo"))
    async with make_bot(tg) as bot:
        message = await bot.send_message(chat["id"], "<b>same</b>", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match=r"^Message is not modified"):
            await message.edit_text("<b>same</b>\n", parse_mode=ParseMode.HTML)
        await message.edit_text("same")  # dropping the bold entity is a change


@pytest.mark.parametrize(
    "bad",
    [
        "<b>unclosed",
        "<b><i>crossed</b></i>",
        "<div>block</div>",
        "1 < 2",
        "fish & chips",
        "a > b",
        '<span class="x">s</span>',
        "&nbsp;",
    ],
)
async def test_invalid_html_is_refused_as_cant_parse_entities(tg: FakeTelegram, bad: str) -> None:
    """Telegram's HTML subset: unknown tags, misnesting and bare < > & raise BadRequest."""
    chat = tg.private_chat(tg.user("Kim"))
    async with make_bot(tg) as bot:
        with pytest.raises(BadRequest, match=r"^Can't parse entities"):
            await bot.send_message(chat["id"], bad, parse_mode=ParseMode.HTML)


async def test_allowed_html_parses_into_entities(tg: FakeTelegram) -> None:
    """Every allowed tag parses; <pre><code class="language-x"> becomes one pre entity."""
    chat = tg.private_chat(tg.user("Lee"))
    source = (
        '<b>b</b><i>i</i><u>u</u><s>s</s><tg-spoiler>p</tg-spoiler><a href="https://x.y/?a=1&amp;b">'
        'l</a><code>c</code><pre><code class="language-python">x = 1</code></pre>'
        '<blockquote expandable>q</blockquote><span class="tg-spoiler">z</span> &#128512;&quot;'
    )
    async with make_bot(tg) as bot:
        message = await bot.send_message(chat["id"], source, parse_mode=ParseMode.HTML)

    assert message.text == 'biusplcx = 1qz 😀"'
    types = [(entity.type, entity.language or entity.url) for entity in message.entities]
    assert types == [
        ("bold", None),
        ("italic", None),
        ("underline", None),
        ("strikethrough", None),
        ("spoiler", None),
        ("text_link", "https://x.y/?a=1&b"),
        ("code", None),
        ("pre", "python"),
        ("expandable_blockquote", None),
        ("spoiler", None),
    ]


async def test_length_is_counted_after_entity_parsing(tg: FakeTelegram) -> None:
    """4096 characters of visible text pass even with markup around them; 4097 are refused."""
    chat = tg.private_chat(tg.user("Max"))
    async with make_bot(tg) as bot:
        await bot.send_message(chat["id"], "<b>" + "&amp;" * 4096 + "</b>", parse_mode="HTML")
        with pytest.raises(BadRequest, match=r"^Message is too long"):
            await bot.send_message(chat["id"], "x" * 4097)
        with pytest.raises(BadRequest, match=r"^Message text is empty"):
            await bot.send_message(chat["id"], "<b> </b>", parse_mode=ParseMode.HTML)


# --------------------------------------------------------------------------- files


async def test_sent_photo_is_stored_and_downloadable(tg: FakeTelegram) -> None:
    """send_photo(bytes) uploads multipart; the returned Message's largest size downloads back."""
    picture = png_bytes(640, 480)
    chat = tg.private_chat(tg.user("Nia"))
    async with make_bot(tg) as bot:
        message = await bot.send_photo(chat["id"], picture, caption="<i>cat</i>", parse_mode="HTML")
        buffer = io.BytesIO()
        await (await bot.get_file(message.photo[-1].file_id)).download_to_memory(buffer)

    assert picture == buffer.getvalue()
    assert (message.photo[-1].width, message.photo[-1].height, message.caption) == (640, 480, "cat")
    assert picture == tg.calls("sendPhoto")[0].files["photo"].data


async def test_photo_limits_are_enforced(tg: FakeTelegram) -> None:
    """Photos over 10 MB, over 10000 px in width+height or not images are refused."""
    chat = tg.private_chat(tg.user("Oz"))
    too_heavy = png_bytes(16, 16) + bytes(10 * 1024 * 1024)
    async with make_bot(tg) as bot:
        with pytest.raises(BadRequest, match=r"(?i)file is too big"):
            await bot.send_photo(chat["id"], too_heavy)
        with pytest.raises(BadRequest, match=r"(?i)photo_invalid_dimensions"):
            await bot.send_photo(chat["id"], png_bytes(9600, 481))  # sum 10081, aspect under 20
        with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
            await bot.send_photo(chat["id"], b"not an image")
        with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
            await bot.send_photo(chat["id"], png_bytes(8, 8), caption="c" * 1025)


async def test_document_upload_keeps_name_and_bytes(tg: FakeTelegram) -> None:
    """send_document stores the bytes with the file name PTB sends."""
    chat = tg.private_chat(tg.user("Pat"))
    async with make_bot(tg) as bot:
        message = await bot.send_document(chat["id"], b"%PDF-1.4", filename="answer.pdf")
        buffer = io.BytesIO()
        assert message.document is not None
        await (await bot.get_file(message.document.file_id)).download_to_memory(buffer)

    assert (message.document.file_name, buffer.getvalue()) == ("answer.pdf", b"%PDF-1.4")


# --------------------------------------------------------------------------- other methods


async def test_message_draft_works_in_private_chats_only(tg: FakeTelegram) -> None:
    """Bot.send_message_draft exists in PTB 22.8; the fake keeps the draft, refuses groups."""
    chat = tg.private_chat(tg.user("Quinn"))
    group = tg.group("g")
    async with make_bot(tg) as bot:
        assert await bot.send_message_draft(chat["id"], 7, "<b>part</b>", parse_mode="HTML")
        first = dict(tg.drafts)
        assert await bot.send_message_draft(chat["id"], 7)  # empty: "Thinking…" placeholder
        with pytest.raises(BadRequest):
            await bot.send_message_draft(group["id"], 7, "no")

    assert first == {(chat["id"], 7): "part"}
    assert tg.drafts == {(chat["id"], 7): ""}


async def test_refused_drafts_surface_as_invalid_token_from_ptb() -> None:
    """A server without sendMessageDraft answers 404, which PTB raises as InvalidToken."""
    async with FakeTelegram(token=TOKEN, drafts_supported=False) as tg:
        chat = tg.private_chat(tg.user("Ray"))
        async with make_bot(tg) as bot:
            with pytest.raises(InvalidToken):
                await bot.send_message_draft(chat["id"], 1, "partial")
            await bot.send_message(chat["id"], "final")  # the fallback still works
        assert tg.messages_in(chat["id"]) == ["final"]


async def test_chat_action_commands_and_delete(tg: FakeTelegram) -> None:
    """sendChatAction, setMyCommands/getMyCommands and deleteMessage behave like Telegram."""
    chat = tg.private_chat(tg.user("Sam"))
    async with make_bot(tg) as bot:
        assert await bot.send_chat_action(chat["id"], "typing")
        with pytest.raises(BadRequest):
            await bot.send_chat_action(chat["id"], "dancing")
        await bot.set_my_commands([("imagine", "draw a picture"), ("reset", "forget")])
        commands = await bot.get_my_commands()
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await bot.set_my_commands([("Bad-Name", "x")])
        message = await bot.send_message(chat["id"], "bye")
        assert await message.delete()
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await message.delete()

    assert [command.command for command in commands] == ["imagine", "reset"]
    assert tg.messages_in(chat["id"]) == []


async def test_recorded_params_are_decoded(tg: FakeTelegram) -> None:
    """Recorded params have nested JSON decoded and string fields left as strings."""
    chat = tg.private_chat(tg.user("Tia"))
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d")]])
    async with make_bot(tg) as bot:
        await bot.send_message(chat["id"], "123", reply_markup=keyboard)

    params = tg.calls("sendMessage")[0].params
    assert (chat["id"], "123") == (params["chat_id"], params["text"])
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "d"


async def test_fail_next_injects_errors_in_order(tg: FakeTelegram) -> None:
    """fail_next answers the next calls with the given error, then normal service resumes."""
    chat = tg.private_chat(tg.user("Uma"))
    tg.fail_next("sendMessage", 502, "Bad Gateway")
    tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 4", retry_after=4)
    async with make_bot(tg) as bot:
        with pytest.raises(NetworkError):
            await bot.send_message(chat["id"], "a")
        with pytest.raises(RetryAfter):
            await bot.send_message(chat["id"], "b")
        await bot.send_message(chat["id"], "c")
    assert tg.messages_in(chat["id"]) == ["c"]


async def test_wrong_token_and_unknown_method(tg: FakeTelegram) -> None:
    """A wrong token is InvalidToken at initialise; an unknown method is EndPointNotFound."""
    with pytest.raises(InvalidToken):
        async with make_bot(tg, "999:WRONG"):
            pass
    async with make_bot(tg) as bot:
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("noSuchMethod")
    assert tg.calls("getMe")[0].status == 401


async def test_reply_to_a_missing_message_is_refused(tg: FakeTelegram) -> None:
    """Replying to a message that does not exist raises BadRequest."""
    chat = tg.private_chat(tg.user("Vic"))
    async with make_bot(tg) as bot:
        with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
            await bot.send_message(chat["id"], "x", reply_to_message_id=999)


# --------------------------------------------------------------------------- getUpdates


async def test_long_poll_returns_as_soon_as_an_update_is_injected(tg: FakeTelegram) -> None:
    """A waiting get_updates(timeout=30) returns the update injected while it waits."""
    walt = tg.user("Walt")
    async with make_bot(tg) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=30, read_timeout=40))
        await tg.wait_until_polling()
        tg.user_message(tg.private_chat(walt), walt, "now")
        updates = await asyncio.wait_for(poll, 5)

    assert [update.message.text for update in updates if update.message] == ["now"]


async def test_offsets_confirm_updates_and_allowed_updates_filter(tg: FakeTelegram) -> None:
    """An offset past an update confirms it; allowed_updates hides other kinds."""
    xena = tg.user("Xena")
    chat = tg.private_chat(xena)
    first = tg.user_message(chat, xena, "one")
    tg.callback_query(xena, first, "press")
    async with make_bot(tg) as bot:
        only_queries = await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
        everything = await bot.get_updates(timeout=0, allowed_updates=[])
        await bot.get_updates(offset=everything[-1].update_id + 1, timeout=0)

    assert [update.message for update in only_queries] == [None]
    assert len(everything) == 2
    assert tg.pending_updates == []
