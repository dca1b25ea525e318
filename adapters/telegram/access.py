"""Who and where on Telegram: the access gate every update passes first, and the access commands.

The gate runs in handler group -1, before any other handler: a refused update stops there
(``ApplicationHandlerStop``), so it never reaches MiniToolAI, opens no account and receives no
starting grant. In a private chat the person gets one short sentence; in a group the bot says
once that it is not enabled there (when it was addressed: a command, a mention or a reply to
it), then stays quiet; a pressed button gets the sentence as an alert.

Owners (``BOT_ADMIN_IDS``) change access with ``/allow``, ``/block``, ``/unblock`` and list it
with ``/access``; group admins switch chat and pictures off and on with ``/disable`` and
``/enable``, and make the bot answer every message with ``/replyall on``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import Bot, Message, Update
from telegram.ext import Application, ApplicationHandlerStop, CommandHandler, ContextTypes, TypeHandler

from adapters.telegram.messages import (
    PLATFORM,
    Incoming,
    arguments,
    incoming,
    mentions_bot,
    replies_to,
    words,
)
from bot.access.policy import Asker
from bot.commands import Reply
from bot.core import Core
from bot.errors import ValidationError
from bot.i18n import N_, _
from bot.ports import Actor

logger = logging.getLogger(__name__)

# (command, description), appended to the command menu.
ACCESS_COMMANDS: tuple[tuple[str, str], ...] = (
    ("disable", N_("Admin: /disable chat|images here")),
    ("enable", N_("Admin: /enable chat|images here")),
    ("replyall", N_("Admin: /replyall on|off: answer every message here")),
    ("allow", N_("Owner: /allow user|chat|role <id> (or reply to the person)")),
    ("block", N_("Owner: /block user|chat <id> (or reply to the person)")),
    ("unblock", N_("Owner: /unblock user|chat|role <id>")),
    ("access", N_("Owner: who may use the bot")),
)

ActorOf = Callable[[Bot, Message, Incoming], Awaitable[Actor]]
Show = Callable[[Bot, Incoming, Reply], Awaitable[None]]
Say = Callable[[Bot, Incoming, str], Awaitable[None]]


def addressed(message: Message, bot: Bot) -> bool:
    """Whether a message is for this bot: a command (not another bot's), a mention or a reply to it."""
    text = message.text or ""
    if text.startswith("/"):
        _, at, name = text.split(maxsplit=1)[0].partition("@")
        return not at or name.lower() == (bot.username or "").lower()
    return mentions_bot(message, bot) or replies_to(message, bot.id)


class AccessHandlers:
    def __init__(self, core: Core, actor_of: ActorOf, show: Show, say: Say) -> None:
        self._core = core
        self._actor_of = actor_of
        self._show = show
        self._say = say

    def register(self, app: Application) -> None:
        app.add_handler(TypeHandler(Update, self.gate), group=-1)
        app.add_handler(CommandHandler([name for name, _ in ACCESS_COMMANDS], self.on_command))

    # ------------------------------------------------------------ the gate

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        access = self._core.access
        if not access.configured:
            return  # nobody is restricted: nothing to look up
        query = update.callback_query
        message = query.message if query is not None else update.message
        user = update.effective_user
        if not isinstance(message, Message) or user is None or user.is_bot:
            return
        if message.successful_payment is not None or message.refunded_payment is not None:
            return  # money already moved: it is always recorded (who may pay is asked at pre-checkout)
        who = incoming(message, user)
        decision = access.check(Asker(who.user, who.place, by_channel=False))
        if decision.allowed:
            return
        logger.info("refused %s in %s: %s", who.user.holder, who.place.scope, decision.reason)
        if query is not None:
            await query.answer(decision.sentence, show_alert=True)
        elif (who.private or addressed(message, context.bot)) and access.tell_refusal(
            who.place, who.user, decision
        ):
            await self._say(context.bot, who, decision.sentence)
        raise ApplicationHandlerStop

    # ------------------------------------------------------------ commands

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None or not message.text:
            return
        bot = context.bot
        who = incoming(message, user)
        name = message.text.split()[0][1:].split("@")[0].lower()
        parts = words(arguments(message))
        actor = await self._actor_of(bot, message, who)
        access = self._core.access
        if name == "access":
            reply = Reply(access.describe(actor), private=True)
        elif name in ("allow", "block", "unblock"):
            kind, target = self._subject(message, who, parts, name)
            reply = Reply(await access.set_rule(actor, name, kind, target, PLATFORM))
        elif name == "replyall":
            if not parts or parts[0].lower() not in ("on", "off"):
                raise ValidationError(_("Use /replyall on or /replyall off."))
            reply = Reply(await access.set_reply_all(actor, who.place, parts[0].lower() == "on"))
        else:
            if not parts:
                raise ValidationError(_("Use /{command} chat or /{command} images.", command=name))
            reply = Reply(await access.switch(actor, who.place, parts[0], on=name == "enable"))
        await self._show(bot, who, reply)

    @staticmethod
    def _subject(message: Message, who: Incoming, parts: list[str], name: str) -> tuple[str, str]:
        """``user <id>``, ``user`` as a reply to the person, ``chat [id]`` (this chat by default)."""
        if not parts:
            raise ValidationError(
                _(
                    "Use /{command} user <id> (or reply to the person), /{command} chat [id] or /{command} role discord:<id>.",
                    command=name,
                )
            )
        kind = parts[0].lower()
        if len(parts) >= 2:
            return kind, parts[1]
        replied = message.reply_to_message
        if kind == "user" and replied is not None and replied.from_user is not None:
            return kind, str(replied.from_user.id)
        if kind in ("chat", "group"):
            return kind, str(who.target.chat_id)
        raise ValidationError(
            _(
                "Whom? Use /{command} {kind} <id>, or send it as a reply to the person.",
                command=name,
                kind=kind,
            )
        )
