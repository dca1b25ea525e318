"""Telegram updates in, core calls out.

Each handler turns an update into a small frozen :class:`Incoming` value (who, where, which
message), awaits one core service and shows what comes back. Errors are not caught here:
they reach the one error handler (:meth:`Handlers.on_error`), which answers the person with a
short sentence and logs everything that is not their doing with ``exc_info``.

Private chat: every message is a prompt. Groups: a message is a prompt when it mentions the
bot, replies to one of its messages, or is an ``/ask``. Forum topics are conversations of
their own (the topic id is the place's channel) and answers go to the same topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from adapters.telegram.access import AccessHandlers
from adapters.telegram.images import DELETE_PREFIX, REGENERATE_PREFIX, TelegramImageSurfaces
from adapters.telegram.messages import (
    PLATFORM,
    Incoming,
    arguments,
    attachment_of,
    incoming,
    mentions_bot,
    quoted,
    replies_to,
    strip_mention,
    target_and_amount,
    topic,
    words,
)
from adapters.telegram.pacing import ChatPacing
from adapters.telegram.private import TelegramPrivate
from adapters.telegram.surface import (
    REGENERATE_DATA,
    STOP_DATA,
    ChatTarget,
    DraftSupport,
    TelegramChatSurface,
    send_text,
)
from bot.access.service import CHAT_OFF
from bot.chat.attachments import MAX_UPLOAD_BYTES, Upload
from bot.chat.conversations import ChatRequest, View
from bot.commands import Reply, help_text
from bot.core import Core
from bot.errors import BotError, InsufficientCredits, UserError, ValidationError
from bot.i18n import N_, _, number, privately
from bot.i18n.catalog import set_voice
from bot.images.options import parse_imagine_args, usage_text
from bot.minitoolai.models import CHAT_MODELS
from bot.ports import Account, Actor, Place

__all__ = ["COMMANDS", "Handlers", "Incoming"]

logger = logging.getLogger(__name__)

ALBUM_QUIET = 1.0  # seconds without a new part after which an album is complete
MODEL_PREFIX = "model:"
SHUTDOWN_GRACE = 10.0  # seconds answers get to record themselves when the bot stops
_ALERT_LIMIT = 200  # characters a callback query answer may show

# (command, description) in the order Telegram's menu shows them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("ask", N_("Ask me something (in groups; or mention me, or reply to me)")),
    ("imagine", N_("Make a picture: /imagine a red fox --size 1152x768")),
    ("stop", N_("Stop the answer I am writing")),
    ("language", N_("The language I speak: /language tr, nb, en or auto")),
    ("reset", N_("Forget this conversation")),
    ("model", N_("Show or choose the chat model")),
    ("system", N_("Show, set or clear my instructions here")),
    ("temperature", N_("How creative the answers are (0-2)")),
    ("context", N_("One shared memory here, or one per person")),
    ("detail", N_("How closely I look at pictures: low, high or auto")),
    ("credits", N_("Your balance and spending")),
    ("usage", N_("Your latest charges")),
    ("prices", N_("What chat and pictures cost")),
    ("help", N_("What I can do")),
    ("start", N_("Say hello")),
    ("grant", N_("Admin: give a user credit (reply to them, or their id, then an amount)")),
    ("take", N_("Admin: take credit from a user")),
    ("setbalance", N_("Admin: set a user's balance")),
    ("pool", N_("Admin: /pool fund <amount> or /pool cap <amount | off>")),
    ("spending", N_("Admin: what this group spent from its pool")),
    ("startinggrant", N_("Owner: what new users receive")),
    ("allowance", N_("Owner: /allowance <amount> daily|weekly|none [cap]")),
    ("chatmodels", N_("Admin: the chat models this group may use (names, or all)")),
    ("imagemodels", N_("Admin: the image models this group may use (names, or all)")),
)

START = N_("Hello! I'm a MiniToolAI assistant. Write to me and I answer.")
ASK_HINT = N_("Ask me something after the command, for example: /ask What is the capital of Peru?")


class Handlers:
    """Every handler of the bot; :meth:`register` adds them to an Application."""

    def __init__(
        self, core: Core, pacing: ChatPacing, drafts: DraftSupport, images: TelegramImageSurfaces
    ) -> None:
        self._core = core
        self._pacing = pacing
        self._drafts = drafts
        self._images = images
        self._access = AccessHandlers(core, self._actor, self._show, self._say)
        self._albums: dict[tuple[int, str], _Album] = {}

    async def interrupt_answers(self) -> None:
        """End answers still streaming with a note while the connection to Telegram is still open.

        python-telegram-bot's ``Application.stop()`` would otherwise wait for every answer to
        run to its end, however long.
        """
        await self._core.chat.interrupt(PLATFORM, grace=SHUTDOWN_GRACE)

    def register(self, app: Application) -> None:
        app.add_handler(TypeHandler(Update, self.speak), group=-2)  # the language, before the gate answers
        self._access.register(app)  # the gate first (group -1), and the access commands
        commands: dict[str, Callable[[Message, Incoming, str, Bot], Awaitable[None]]] = {
            "start": self._start,
            "help": self._help,
            "ask": self._ask,
            "imagine": self._imagine,
            "stop": self._stop_command,
            "model": self._model,
            "language": self._language,
        }
        for name, method in commands.items():
            app.add_handler(CommandHandler(name, self._command(method)))
        app.add_handler(
            CommandHandler([name for name, _ in COMMANDS if name not in commands], self.on_core_command)
        )
        app.add_handler(
            MessageHandler(
                filters.UpdateType.MESSAGE
                & ~filters.COMMAND
                & (filters.TEXT | filters.PHOTO | filters.Document.ALL),
                self.on_message,
            )
        )
        app.add_handler(CallbackQueryHandler(self.on_callback))
        app.add_error_handler(self.on_error)

    # ------------------------------------------------------------ language

    async def speak(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every update is answered in its languages: the member's (own choice, the community's,
        their Telegram app's ``language_code``) for private replies, the group's for public ones."""
        user, chat = update.effective_user, update.effective_chat
        account = Account(PLATFORM, str(user.id)) if user is not None else None
        place = None
        if chat is not None:
            place = Place(PLATFORM, f"dm:{chat.id}" if chat.type == chat.PRIVATE else str(chat.id))
        hint = user.language_code if user is not None else None
        set_voice(await self._core.commands.languages.voice(account, place, hint))

    async def _language(self, message: Message, who: Incoming, args: str, bot: Bot) -> None:
        actor = await self._actor(bot, message, who)
        await self._show(bot, who, await self._core.commands.language(actor, who.place, args))

    # ------------------------------------------------------------ messages

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None or user.is_bot:
            return
        bot = context.bot
        who = incoming(message, user)
        text = message.text or message.caption or ""
        called = who.private or mentions_bot(message, bot) or replies_to(message, bot.id)
        switches = None if who.private else self._core.access.switches(who.place)
        addressed = called or (switches is not None and switches.reply_all)
        if addressed and switches is not None and switches.chat_off:
            # Said once per chat, and only to someone who called the bot.
            if called and self._core.access.first_notice(("chat off", who.place)):
                await self._reply(bot, who.target, _(CHAT_OFF))
            return
        if message.media_group_id is not None:
            await self._album_part(bot, message, who, strip_mention(text, bot.username), addressed)
            return
        if not addressed:
            return  # group chatter not meant for the bot
        if not who.private:
            text = strip_mention(text, bot.username)
        await self._chat(bot, message, who, text)

    async def _album_part(
        self, bot: Bot, message: Message, who: Incoming, text: str, addressed: bool
    ) -> None:
        """Pictures sent together (an album) arrive as one message each, sharing a media_group_id;
        the model gets them as one message. The first part's handler collects the others until none
        has come for ``ALBUM_QUIET`` seconds, then answers (if the album was meant for the bot)."""
        key = (who.target.chat_id, str(message.media_group_id))
        album = self._albums.get(key)
        if album is not None:
            album.add(message, text, addressed)
            return
        album = self._albums[key] = _Album(message, who, text, addressed)
        try:
            await album.complete(ALBUM_QUIET)
        finally:
            del self._albums[key]
        if album.addressed:
            await self._chat(bot, album.first, album.who, album.text, parts=album.parts)

    async def _chat(
        self, bot: Bot, message: Message, who: Incoming, text: str, *, parts: Sequence[Message] = ()
    ) -> None:
        files = await self._files(bot, parts or [message])
        replied_text = quoted(message, bot.id)
        request = ChatRequest(
            user=who.user,
            place=who.place,
            text=text,
            files=files,
            quoted_text=replied_text,
            user_name="" if who.private else who.user_name,
        )
        chat_id = who.target.chat_id
        surface = TelegramChatSurface(bot, who.target, self._drafts, self._pacing)
        view = View(surface, self._pacing.policy(chat_id), self._pacing.bucket(chat_id))
        await self._core.chat.answer(request, view)

    async def _files(self, bot: Bot, messages: Sequence[Message]) -> tuple[Upload, ...]:
        """The photos and documents of the messages (or, for one message without any, of the message
        it replies to), downloaded as bytes; the core decides what each is by its content.

        Telegram file links contain the bot token: only bytes leave this method, and neither
        the link nor the ``File`` object is ever logged.
        """
        sources = [m for m in messages if attachment_of(m) is not None]
        if not sources and len(messages) == 1 and messages[0].reply_to_message is not None:
            sources = [messages[0].reply_to_message]
        files = []
        for source in sources:
            found = attachment_of(source)
            if found is None:
                continue
            file_id, size, name = found
            if size is not None and size > MAX_UPLOAD_BYTES:
                megabytes = round(size / 1024 / 1024, 1)
                raise ValidationError(
                    _(
                        "{name} is too large ({size} MB). Please send files under {limit} MB.",
                        name=name,
                        size=number(megabytes, 1),
                        limit=MAX_UPLOAD_BYTES // 1024 // 1024,
                    )
                )
            file = await bot.get_file(file_id)
            data = bytes(await file.download_as_bytearray())
            if len(data) > MAX_UPLOAD_BYTES:
                raise ValidationError(_("{name} is too large. Please send a smaller file.", name=name))
            files.append(Upload(name, data))
        return tuple(files)

    # ------------------------------------------------------------ commands

    def _command(
        self, method: Callable[[Message, Incoming, str, Bot], Awaitable[None]]
    ) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
        async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            message, user = update.message, update.effective_user
            if message is None or user is None:
                return
            await method(message, incoming(message, user), arguments(message), context.bot)

        return handle

    async def _start(self, message: Message, who: Incoming, args: str, bot: Bot) -> None:
        await self._reply(bot, who.target, _(START) + "\n\n" + help_text())

    async def _help(self, message: Message, who: Incoming, args: str, bot: Bot) -> None:
        await self._reply(bot, who.target, help_text())

    async def _ask(self, message: Message, who: Incoming, args: str, bot: Bot) -> None:
        text = args
        replied = message.reply_to_message
        if (
            not text
            and replied is not None
            and replied.from_user is not None
            and replied.from_user.id != bot.id
        ):
            text = replied.text or replied.caption or ""
        if not text.strip() and attachment_of(replied) is None:
            await self._reply(bot, who.target, _(ASK_HINT))
            return
        await self._chat(bot, message, who, text)

    async def _stop_command(self, message: Message, who: Incoming, args: str, bot: Bot) -> None:
        stopped = await self._stop(bot, who, message)
        if not stopped:
            await self._reply(bot, who.target, _("I am not writing anything here right now."))

    async def _imagine(self, message: Message, who: Incoming, args: str, bot: Bot) -> None:
        if not args.strip():
            await self._reply(bot, who.target, usage_text())
            return
        options = parse_imagine_args(args)
        actor = await self._actor(bot, message, who)
        surface = self._images.for_place(who.place)
        await self._core.images.submit(
            who.user, who.place, options, surface, is_admin=actor.is_platform_admin
        )

    async def _model(self, message: Message, who: Incoming, args: str, bot: Bot) -> None:
        actor = await self._actor(bot, message, who)
        if args.strip():
            await self._reply(bot, who.target, (await self._core.commands.model(actor, who.place, args)).text)
            return
        effective = await self._core.prefs.effective(who.place)
        current = effective.model
        buttons = [
            InlineKeyboardButton(("✓ " if name == current else "") + name, callback_data=MODEL_PREFIX + name)
            for name in effective.allowed_chat_models or CHAT_MODELS
        ]
        keyboard = InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])
        await self._reply(bot, who.target, _("Model here: {model}. Choose one:", model=current), keyboard)

    async def on_core_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The commands whose whole work is one call of ``core.commands`` returning a Reply."""
        message, user = update.message, update.effective_user
        if message is None or user is None or not message.text:
            return
        bot = context.bot
        who = incoming(message, user)
        name = message.text.split()[0][1:].split("@")[0].lower()
        args = arguments(message)
        actor = await self._actor(bot, message, who)
        reply = await self._core_command(name, args, actor, who, message)
        await self._show(bot, who, reply)

    async def _show(self, bot: Bot, who: Incoming, reply: Reply) -> None:
        """A command's reply: a private one goes to the person's own chat when Telegram lets it."""
        if reply.private and not who.private and await self._tell_privately(bot, who, reply.text):
            await self._reply(bot, who.target, _("I sent you the details in a private message."))
            return
        await self._reply(bot, who.target, reply.text)

    async def _say(self, bot: Bot, who: Incoming, text: str) -> None:
        await self._reply(bot, who.target, text)

    async def _tell_privately(self, bot: Bot, who: Incoming, text: str) -> bool:
        """Send a private reply (a balance, say) to the person's own chat with the bot.

        False when Telegram does not let the bot write first (the person never opened a chat
        with it): the reply then goes to the group, which is where the person asked.
        """
        return await TelegramPrivate(bot, self._pacing).send_private(who.user.holder, text)

    async def _core_command(
        self, name: str, args: str, actor: Actor, who: Incoming, message: Message
    ) -> Reply:
        commands, place = self._core.commands, who.place
        simple: dict[str, Callable[[], Awaitable[Reply]]] = {
            "reset": lambda: commands.reset(actor, place),
            "system": lambda: commands.system(actor, place, args),
            "temperature": lambda: commands.temperature(actor, place, args),
            "context": lambda: commands.context(actor, place, args),
            "detail": lambda: commands.detail(actor, place, args),
            "credits": lambda: commands.credits(actor, place),
            "usage": lambda: commands.usage(actor, place),
            "prices": commands.prices,
            "spending": lambda: commands.spending(actor, place),
            "startinggrant": lambda: commands.starting_grant(actor, args),
            "chatmodels": lambda: commands.chat_models(actor, place, args),
            "imagemodels": lambda: commands.image_models(actor, place, args),
        }
        if name in simple:
            return await simple[name]()
        parts = words(args)
        if name == "pool":
            if not parts:
                raise ValidationError(_("Use /pool fund <amount> or /pool cap <amount | off>."))
            return await commands.pool(actor, place, parts[0], " ".join(parts[1:]))
        if name == "allowance":
            if len(parts) not in (2, 3):
                raise ValidationError(_("Use /allowance <amount> daily|weekly|none [cap]."))
            return await commands.allowance(actor, parts[0], parts[1], parts[2] if len(parts) == 3 else "")
        target, amount = target_and_amount(message, parts, name)
        action = {"grant": commands.grant, "take": commands.take, "setbalance": commands.set_balance}[name]
        return await action(actor, target, amount, place)

    # ------------------------------------------------------------ buttons

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            return
        bot = context.bot
        who = incoming(query.message, query.from_user)
        # The button pressed is under our message; answers go to that chat, not as a reply to it.
        who = Incoming(
            who.user, who.user_name, who.place, ChatTarget(who.target.chat_id, who.target.thread_id)
        )
        data = query.data
        if data == STOP_DATA:
            stopped = await self._stop(bot, who, None)
            await query.answer(
                _("Stopping.") if stopped else _("Only the person who asked, or an admin, can stop it.")
            )
        elif data == REGENERATE_DATA:
            self._core.access.require_chat(who.place)  # before the toast; the core checks it too
            await query.answer(_("Writing it again…"))
            surface = TelegramChatSurface(bot, who.target, self._drafts, self._pacing)
            chat_id = who.target.chat_id
            view = View(surface, self._pacing.policy(chat_id), self._pacing.bucket(chat_id))
            await self._core.chat.regenerate(who.place, who.user, view)
        elif data.startswith(MODEL_PREFIX):
            await self._choose_model(query, who, data.removeprefix(MODEL_PREFIX), bot)
        elif data.startswith((REGENERATE_PREFIX, DELETE_PREFIX)):
            await self._image_button(query, who, data, bot)
        else:
            await query.answer()

    async def _choose_model(self, query: CallbackQuery, who: Incoming, name: str, bot: Bot) -> None:
        assert isinstance(query.message, Message)
        actor = await self._actor(bot, None, who)
        reply = await self._core.commands.model(actor, who.place, name)
        await query.answer(reply.text[:_ALERT_LIMIT])
        await self._pacing.run(who.target.chat_id, lambda: query.edit_message_text(reply.text))

    async def _image_button(self, query: CallbackQuery, who: Incoming, data: str, bot: Bot) -> None:
        service = self._core.images
        actor = await self._actor(bot, None, who)
        job_id = data[len(REGENERATE_PREFIX) :]
        if data.startswith(DELETE_PREFIX):
            # BOT_ADMIN_IDS may delete anyone's picture anywhere, like the chat's admins here.
            await service.delete(job_id, who.user, is_admin=self._core.prefs.is_admin(actor))
            await query.answer(_("Deleted."))
            return
        self._core.access.require_images(who.place)  # before the toast; the core checks it too
        await query.answer(_("Making it again…"))
        await service.regenerate(
            job_id, who.user, self._images.for_place(who.place), is_admin=actor.is_platform_admin
        )

    # ------------------------------------------------------------ shared

    async def _stop(self, bot: Bot, who: Incoming, message: Message | None) -> bool:
        # *_anywhere: the answer may be streaming in another worker process.
        if await self._core.chat.stop_anywhere(who.place, who.user):
            return True
        if not await self._core.chat.is_answering_anywhere(who.place):
            return False
        actor = await self._actor(bot, message, who)
        # The chat's admins, and BOT_ADMIN_IDS everywhere, may stop someone else's answer (which
        # may be streaming in another worker).
        return self._core.prefs.is_admin(actor) and await self._core.chat.stop_anywhere(
            who.place, who.user, is_admin=True
        )

    async def _actor(self, bot: Bot, message: Message | None, who: Incoming) -> Actor:
        """The person, and whether Telegram says they administer this chat (always, in private)."""
        if who.private:
            return Actor(who.user, is_platform_admin=True)
        if (
            message is not None
            and message.sender_chat is not None
            and message.sender_chat.id == who.target.chat_id
        ):
            return Actor(who.user, is_platform_admin=True)  # an anonymous admin, writing as the group
        member = await bot.get_chat_member(who.target.chat_id, int(who.user.holder))
        return Actor(who.user, member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER))

    async def _reply(
        self, bot: Bot, target: ChatTarget, text: str, keyboard: InlineKeyboardMarkup | None = None
    ) -> None:
        await send_text(bot, self._pacing, target, text, keyboard)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The one error handler: a short, clear answer for the person; the details for the owner."""
        error = context.error
        if isinstance(error, UserError):
            logger.info("refused a request: %s", error)
            text = error.user_message
        elif isinstance(error, BotError):
            logger.warning("request failed: %s", error, exc_info=error)
            text = error.user_message
        else:
            logger.error("unexpected error while handling an update", exc_info=error)
            text = BotError().user_message
        if not isinstance(update, Update):
            return
        try:
            if isinstance(error, InsufficientCredits):
                text = await self._credit_details(update, context.bot, error)
            await self._tell(update, context.bot, text)
        except Exception:
            logger.warning("could not tell the person about the error", exc_info=True)

    async def _credit_details(self, update: Update, bot: Bot, error: InsufficientCredits) -> str:
        """Balances are private: in a group the details go to the person's own chat with the bot,
        and the group sees one short sentence (the text returned)."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or chat.type == "private":
            return error.user_message
        with privately():
            details = error.user_message
        if await TelegramPrivate(bot, self._pacing).send_private(str(user.id), details):
            return _("{refusal} I sent you the details in a private message.", refusal=error.public_message)
        return _(
            "{refusal} Open a private chat with me and send /credits to see your balance.",
            refusal=error.public_message,
        )

    async def _tell(self, update: Update, bot: Bot, text: str) -> None:
        query = update.callback_query
        if query is not None:
            try:
                if len(text) <= _ALERT_LIMIT:
                    await query.answer(text, show_alert=True)
                    return
                await query.answer()
            except TelegramError:
                pass  # already answered (e.g. "Writing it again…"): say it in the chat instead
            pressed = query.message
            if isinstance(pressed, Message):
                await self._reply(bot, ChatTarget(pressed.chat_id, topic(pressed)), text)
            return
        message, user = update.effective_message, update.effective_user
        if message is not None and user is not None:
            await self._reply(bot, incoming(message, user).target, text)


class _Album:
    """The parts of one album as they arrive, in order; ``complete`` returns once they stop coming."""

    def __init__(self, first: Message, who: Incoming, text: str, addressed: bool) -> None:
        self.first, self.who, self.text, self.addressed = first, who, text, addressed
        self.parts: list[Message] = [first]
        self._arrived = asyncio.Event()

    def add(self, message: Message, text: str, addressed: bool) -> None:
        self.parts.append(message)
        if text and not self.text:
            self.text = text  # the caption may come with any part (usually the first)
        if addressed and not self.addressed:
            self.addressed, self.first = True, message
        self._arrived.set()

    async def complete(self, quiet: float) -> None:
        while True:
            try:
                await asyncio.wait_for(self._arrived.wait(), quiet)
            except TimeoutError:
                self.parts.sort(key=lambda m: m.message_id)
                return
            self._arrived.clear()
