"""The chat Surface: how one streaming answer appears in a Telegram chat.

Private chats stream through ``sendMessageDraft`` (an animated, ephemeral preview) and then send
the final text with ``sendMessage``; a server that refuses drafts switches the whole bot to
send-and-edit, which groups always use. Text is rendered to HTML (see ``render``); if Telegram
still refuses the markup, the surface sends the plain text instead. While streaming, group
messages carry a Stop button; the last message of a finished answer gets Regenerate.

Handles are ``"m<message id>"`` for real messages and ``"d<draft id>"`` for drafts (a draft
becomes a real message when its final text is sent; the handle stays the same).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError

from adapters.telegram.pacing import MAX_MESSAGE, ChatPacing, retry_seconds, settling
from adapters.telegram.render import to_html
from bot.display.streaming import Outcome, show_unfolded
from bot.display.text import split_message
from bot.errors import PlatformRateLimited
from bot.i18n import _

__all__ = [
    "REGENERATE_DATA",
    "STOP_DATA",
    "ChatTarget",
    "DraftSupport",
    "TelegramChatSurface",
    "is_not_modified",
    "is_parse_error",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

STOP_DATA = "stop"
REGENERATE_DATA = "regen"


def stop_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(_("⏹ Stop"), callback_data=STOP_DATA)]])


def regenerate_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(_("🔄 Regenerate"), callback_data=REGENERATE_DATA)]])


def is_parse_error(error: BadRequest) -> bool:
    # PTB strips "Bad Request: " and capitalises the description; compare case-insensitively.
    return "can't parse entities" in error.message.lower()


def is_not_modified(error: BadRequest) -> bool:
    return "message is not modified" in error.message.lower()


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """Where an answer goes: the chat, the forum topic, and the message it answers."""

    chat_id: int
    thread_id: int | None = None
    reply_to: int | None = None

    @property
    def private(self) -> bool:
        return self.chat_id > 0


async def send_text(
    bot: Bot, pacing: ChatPacing, target: ChatTarget, text: str, keyboard: InlineKeyboardMarkup | None = None
) -> None:
    """Plain text in the chat (and topic), replying to the message in groups, in as many messages as
    its length needs, each within the chat's budget; the keyboard goes on the last one."""
    pieces = split_message(text, MAX_MESSAGE)
    for index, piece in enumerate(pieces):
        reply = None
        if index == 0 and not target.private and target.reply_to is not None:
            reply = ReplyParameters(target.reply_to, allow_sending_without_reply=True)
        markup = keyboard if index == len(pieces) - 1 else None
        await pacing.run(
            target.chat_id,
            lambda piece=piece, reply=reply, markup=markup: bot.send_message(  # type: ignore[misc]
                target.chat_id,
                piece,
                message_thread_id=target.thread_id,
                reply_parameters=reply,
                reply_markup=markup,
            ),
        )


class DraftSupport:
    """Whether the Bot API server takes ``sendMessageDraft``; learnt once for the whole bot."""

    def __init__(self) -> None:
        self.enabled = True
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)


@dataclass(slots=True)
class _Draft:
    draft_id: int
    text: str
    message_id: int | None = None  # set once the final text was sent as a real message


class TelegramChatSurface:
    """A :class:`bot.display.streaming.TypingSurface` for one answer in one chat."""

    def __init__(self, bot: Bot, target: ChatTarget, drafts: DraftSupport, pacing: ChatPacing) -> None:
        self._bot = bot
        self._pacing = pacing
        self._target = target
        self._drafts = drafts
        self._pending: dict[str, _Draft] = {}
        self._plain = False  # Telegram refused our HTML once: plain text for the rest of the answer
        self._replied = False

    # ------------------------------------------------------------ Surface

    async def send(self, text: str, *, final: bool) -> str:
        if self._target.private and self._drafts.enabled and not final:
            draft = _Draft(self._drafts.next_id(), text)
            if await self._draft(draft.draft_id, text):
                handle = f"d{draft.draft_id}"
                self._pending[handle] = draft
                return handle
        message = await self._send(text, final=final)
        return f"m{message.message_id}"

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        draft = self._pending.get(handle)
        if draft is not None and draft.message_id is None:
            if not final and self._drafts.enabled and await self._draft(draft.draft_id, text):
                draft.text = text
                return
            # The draft may already show every word (with the typing indicator after them).
            with settling() if draft.text.startswith(text) else contextlib.nullcontext():
                draft.message_id = (await self._send(text, final=final)).message_id
            draft.text = text
            return
        message_id = draft.message_id if draft is not None else _message_id(handle)
        assert message_id is not None
        await self._edit(message_id, text, final=final)

    async def show_last(
        self, handle: str | None, text: str, earlier: Sequence[str], outcome: Outcome
    ) -> tuple[str, bool]:
        """The last message's final text with the Regenerate button on it: one request, not two."""
        if any((d := self._pending.get(h)) is not None and d.message_id is None for h in earlier):
            # Earlier drafts become messages in finish(), and the button goes below them.
            return await show_unfolded(self, handle, text)
        if handle is None:
            return f"m{(await self._send(text, final=True, keyboard=regenerate_keyboard())).message_id}", True
        draft = self._pending.get(handle)
        if draft is not None and draft.message_id is None:
            with settling() if draft.text.startswith(text) else contextlib.nullcontext():
                message = await self._send(text, final=True, keyboard=regenerate_keyboard())
            draft.message_id, draft.text = message.message_id, text
            return handle, True
        message_id = draft.message_id if draft is not None else _message_id(handle)
        assert message_id is not None
        await self._edit(message_id, text, final=True, keyboard=regenerate_keyboard())
        return handle, True

    async def finish(self, handles: Sequence[str], outcome: Outcome) -> None:
        for handle in handles:
            draft = self._pending.get(handle)
            if draft is not None and draft.message_id is None:
                # A draft vanishes unless its text is sent for real.
                with settling():
                    draft.message_id = (await self._send(draft.text, final=True)).message_id
        if not handles:
            return
        last = self._pending.get(handles[-1])
        message_id = last.message_id if last is not None else _message_id(handles[-1])
        assert message_id is not None
        try:
            async with self._pacing.spaced(self._target.chat_id):
                await self._bot.edit_message_reply_markup(
                    self._target.chat_id, message_id, reply_markup=regenerate_keyboard()
                )
        except RetryAfter as exc:
            raise PlatformRateLimited(retry_seconds(exc)) from exc
        except BadRequest as exc:
            if not is_not_modified(exc):
                raise

    async def typing(self) -> None:
        await self._bot.send_chat_action(
            self._target.chat_id, ChatAction.TYPING, message_thread_id=self._target.thread_id
        )

    # ------------------------------------------------------------ requests

    async def _draft(self, draft_id: int, text: str) -> bool:
        """Show a draft; False when the server refuses drafts (the bot then edits instead)."""
        try:
            await self._with_markup_fallback(
                lambda html, mode: self._bot.send_message_draft(
                    self._target.chat_id,
                    draft_id,
                    text=html,
                    message_thread_id=self._target.thread_id,
                    parse_mode=mode,
                ),
                text,
            )
        except PlatformRateLimited:
            raise
        except TelegramError as exc:
            # A server without the method answers 404, which PTB reports as InvalidToken.
            logger.warning("message drafts refused (%s); streaming by edits from now on", type(exc).__name__)
            self._drafts.enabled = False
            return False
        return True

    async def _send(self, text: str, *, final: bool, keyboard: InlineKeyboardMarkup | None = None) -> Message:
        """Post ``text``; a streaming message carries Stop, a final one ``keyboard`` (or none)."""
        reply = None
        if not self._replied and self._target.reply_to is not None and not self._target.private:
            reply = ReplyParameters(self._target.reply_to, allow_sending_without_reply=True)
        markup = keyboard if final else stop_keyboard()
        message: Message = await self._with_markup_fallback(
            lambda html, mode: self._bot.send_message(
                self._target.chat_id,
                html,
                parse_mode=mode,
                message_thread_id=self._target.thread_id,
                reply_parameters=reply,
                reply_markup=markup,
            ),
            text,
        )
        self._replied = True
        return message

    async def _edit(
        self, message_id: int, text: str, *, final: bool, keyboard: InlineKeyboardMarkup | None = None
    ) -> None:
        try:
            await self._with_markup_fallback(
                lambda html, mode: self._bot.edit_message_text(
                    html,
                    self._target.chat_id,
                    message_id,
                    parse_mode=mode,
                    reply_markup=keyboard if final else stop_keyboard(),
                ),
                text,
            )
        except BadRequest as exc:
            if not is_not_modified(exc):
                raise

    async def _with_markup_fallback(self, call: Callable[[str, str | None], Awaitable[T]], text: str) -> T:
        """``call(text, parse_mode)`` with HTML, or plain text once Telegram refuses the markup."""
        try:
            if not self._plain:
                try:
                    async with self._pacing.spaced(self._target.chat_id):
                        return await call(to_html(text), ParseMode.HTML)
                except BadRequest as exc:
                    if not is_parse_error(exc):
                        raise
                    logger.warning("Telegram refused the HTML (%s); sending plain text", exc.message)
                    self._plain = True
            async with self._pacing.spaced(self._target.chat_id):
                return await call(text, None)
        except RetryAfter as exc:
            raise PlatformRateLimited(retry_seconds(exc)) from exc


def _message_id(handle: str) -> int:
    return int(handle[1:])
