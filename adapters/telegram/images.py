"""Where /imagine jobs show their progress and post their pictures in Telegram.

:class:`TelegramImageSurface` implements the core's ``ImageSurface``: progress is a plain text
message edited in place; the picture goes out with ``sendPhoto`` (or ``sendDocument`` when it is
too large or too oddly shaped for a photo), its caption cut to Telegram's 1024 characters, with
Regenerate and Delete buttons. :class:`TelegramImageSurfaces` rebuilds a surface from a stored
job's place, so jobs resumed after a restart post to the right chat and topic.

Handles are ``"<chat id>:<message id>"``: stored with the job, they outlive the process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, ReplyParameters
from telegram.error import BadRequest

from adapters.telegram.pacing import ChatPacing
from adapters.telegram.surface import is_not_modified
from bot.display.text import truncate
from bot.i18n import _
from bot.minitoolai.types import DownloadedImage
from bot.ports import ImageJob, Place

__all__ = [
    "CAPTION_LIMIT",
    "DELETE_PREFIX",
    "REGENERATE_PREFIX",
    "TelegramImageSurface",
    "TelegramImageSurfaces",
    "chat_of",
]

logger = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
REGENERATE_PREFIX = "img:r:"  # + a 32-character job id: 38 bytes, within the 64 allowed
DELETE_PREFIX = "img:d:"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def chat_of(place: Place) -> tuple[int, int | None]:
    """The chat id and forum topic of a Telegram place."""
    scope = place.scope.removeprefix("dm:")
    return int(scope), int(place.channel) if place.channel else None


class TelegramImageSurface:
    """Progress messages and the finished picture of image jobs in one chat (or topic)."""

    caption_limit = CAPTION_LIMIT

    def __init__(self, bot: Bot, pacing: ChatPacing, chat_id: int, thread_id: int | None) -> None:
        self._bot = bot
        self._pacing = pacing
        self._chat_id = chat_id
        self._thread_id = thread_id

    async def show_progress(self, text: str) -> str:
        message = await self._pacing.once(
            self._chat_id,
            lambda: self._bot.send_message(self._chat_id, text, message_thread_id=self._thread_id),
        )
        return self._handle(message)

    async def edit_progress(self, handle: str, text: str) -> None:
        chat_id, message_id = _parse(handle)
        try:
            await self._pacing.once(chat_id, lambda: self._bot.edit_message_text(text, chat_id, message_id))
        except BadRequest as exc:
            if not is_not_modified(exc):
                raise

    async def post_image(
        self, image: DownloadedImage, caption: str, job_id: str, *, reply_to: str | None
    ) -> str:
        caption = truncate(caption, CAPTION_LIMIT)
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(_("🔄 Regenerate"), callback_data=REGENERATE_PREFIX + job_id),
                    InlineKeyboardButton(_("🗑 Delete"), callback_data=DELETE_PREFIX + job_id),
                ]
            ]
        )
        reply = ReplyParameters(_parse(reply_to)[1], allow_sending_without_reply=True) if reply_to else None
        name = f"{job_id}.{_EXTENSIONS.get(image.mime, 'png')}"

        async def send(method: Callable[..., Awaitable[Message]]) -> Message:
            return await self._pacing.once(
                self._chat_id,
                lambda: method(
                    self._chat_id,
                    InputFile(image.data, filename=name),
                    caption=caption,
                    message_thread_id=self._thread_id,
                    reply_parameters=reply,
                    reply_markup=keyboard,
                ),
            )

        if len(image.data) <= MAX_PHOTO_BYTES:
            try:
                return self._handle(await send(self._bot.send_photo))
            except BadRequest as exc:
                # Too large a side or too thin for a photo: a document keeps every pixel.
                logger.info("photo refused (%s); sending the image as a document", exc.message)
        message = await send(self._bot.send_document)
        return self._handle(message)

    async def delete(self, handle: str) -> None:
        chat_id, message_id = _parse(handle)
        await self._bot.delete_message(chat_id, message_id)

    def _handle(self, message: Message) -> str:
        return f"{message.chat_id}:{message.message_id}"


class TelegramImageSurfaces:
    """The ``SurfaceFactory`` the image service uses for Telegram jobs (also after a restart)."""

    def __init__(self, bot: Bot, pacing: ChatPacing) -> None:
        self._bot = bot
        self._pacing = pacing

    def for_place(self, place: Place) -> TelegramImageSurface:
        chat_id, thread_id = chat_of(place)
        return TelegramImageSurface(self._bot, self._pacing, chat_id, thread_id)

    def for_job(self, job: ImageJob) -> TelegramImageSurface:
        return self.for_place(job.place)


def _parse(handle: str) -> tuple[int, int]:
    chat, _, message = handle.partition(":")
    return int(chat), int(message)
