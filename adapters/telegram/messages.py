"""Reading Telegram messages: who wrote where, what they asked, which picture they showed.

Small pure functions over python-telegram-bot's objects, used by the handlers. A private chat is
the place ``dm:<chat id>``; a group is its chat id, with the forum topic (or "") as the channel.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from telegram import Bot, Message, MessageEntity, User

from adapters.telegram.surface import ChatTarget
from bot.errors import ValidationError
from bot.i18n import _
from bot.ports import Account, Place

__all__ = [
    "PLATFORM",
    "Incoming",
    "arguments",
    "attachment_of",
    "incoming",
    "mentions_bot",
    "quoted",
    "replies_to",
    "strip_mention",
    "target_and_amount",
    "topic",
    "words",
]

PLATFORM = "telegram"


@dataclass(frozen=True, slots=True)
class Incoming:
    """Who wrote, where, and in answer to which message: everything a core call needs."""

    user: Account
    user_name: str
    place: Place
    target: ChatTarget

    @property
    def private(self) -> bool:
        return self.target.private


def incoming(message: Message, user: User) -> Incoming:
    """The person, place and reply target of a message (or of the message under a pressed button)."""
    chat = message.chat
    thread = topic(message)
    if chat.type == chat.PRIVATE:
        place = Place(PLATFORM, f"dm:{chat.id}")
    else:
        place = Place(PLATFORM, str(chat.id), str(thread) if thread is not None else "")
    return Incoming(
        user=Account(PLATFORM, str(user.id)),
        user_name=user.full_name,
        place=place,
        target=ChatTarget(chat.id, thread, message.message_id),
    )


def mentions_bot(message: Message, bot: Bot) -> bool:
    """Whether the text or caption mentions the bot (by @username, or a mention without one)."""
    username = (bot.username or "").lower()
    for parsed in (
        message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]),
        message.parse_caption_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]),
    ):
        for entity, text in parsed.items():
            if entity.type == MessageEntity.MENTION and text[1:].lower() == username:
                return True
            if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot.id:
                return True
    return False


def topic(message: Message) -> int | None:
    # Outside forums, replies carry a message_thread_id too; only forum topics are places.
    return message.message_thread_id if message.is_topic_message else None


def arguments(message: Message) -> str:
    """The text after ``/command`` (or ``/command@bot``), keeping its line breaks."""
    text = message.text or ""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def words(text: str) -> list[str]:
    """Command arguments split like a shell would (quotes group words); plainly if quotes are unbalanced."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def replies_to(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot_id


def quoted(message: Message, bot_id: int) -> str | None:
    """The text of the message this one replies to, unless it is ours (already in the conversation)."""
    replied = message.reply_to_message
    if replied is None or replies_to(message, bot_id) or replied.forum_topic_created is not None:
        return None
    return replied.text or replied.caption or None


def strip_mention(text: str, username: str | None) -> str:
    if not username:
        return text
    mention = f"@{username}"
    lowered = text.lower()
    at = lowered.find(mention.lower())
    while at >= 0:
        text = text[:at] + text[at + len(mention) :]
        lowered = text.lower()
        at = lowered.find(mention.lower())
    return " ".join(text.split(" ")).strip()


def attachment_of(message: Message | None) -> tuple[str, int | None, str] | None:
    """The file id, size and name of a message's photo (its largest rendition) or document."""
    if message is None:
        return None
    if message.photo:
        largest = message.photo[-1]
        return largest.file_id, largest.file_size, f"photo-{message.message_id}.jpg"
    document = message.document
    if document is None:
        return None
    return document.file_id, document.file_size, document.file_name or "document"


def target_and_amount(message: Message, words: list[str], name: str) -> tuple[Account, str]:
    """The user an admin command is about: the author of the replied-to message, or an id."""
    replied = message.reply_to_message
    if (
        replied is not None
        and replied.from_user is not None
        and not replied.from_user.is_bot
        and len(words) == 1
    ):
        return Account(PLATFORM, str(replied.from_user.id)), words[0]
    if len(words) == 2:
        holder = words[0].removeprefix(f"{PLATFORM}:")
        if holder.isdigit():
            return Account(PLATFORM, holder), words[1]
    raise ValidationError(
        _(
            "Use /{command} <amount> as a reply to the person's message, or /{command} <user id> <amount>.",
            command=name,
        )
    )
