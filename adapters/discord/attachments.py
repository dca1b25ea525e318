"""Pictures people attach (to /chat or to a message for the bot), downloaded as bytes.

The core sends them to the model as ``data:`` URLs; nothing keeps a Discord CDN link.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence

import discord

from bot.errors import ValidationError
from bot.ports import StoredImage

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


def is_image(attachment: discord.Attachment) -> bool:
    return _mime(attachment) in IMAGE_TYPES


def _mime(attachment: discord.Attachment) -> str:
    declared = (attachment.content_type or "").split(";")[0].strip().lower()
    return declared or mimetypes.guess_type(attachment.filename)[0] or ""


async def download_images(
    attachments: Sequence[discord.Attachment], max_bytes: int
) -> tuple[StoredImage, ...]:
    """The pictures among ``attachments``; other files are left out.

    Raises ``ValidationError`` for a picture over ``max_bytes`` or one that cannot be fetched.
    """
    images = []
    for attachment in attachments:
        if not is_image(attachment):
            continue
        if attachment.size > max_bytes:
            raise ValidationError(
                f"The picture {attachment.filename} is too large ({attachment.size // 1024 // 1024} MB; "
                f"at most {max_bytes // 1024 // 1024} MB)."
            )
        try:
            data = await attachment.read()
        except discord.HTTPException:
            raise ValidationError(
                f"I could not download the picture {attachment.filename}. Please try again."
            ) from None
        images.append(StoredImage(_mime(attachment), data))
    return tuple(images)


def require_image(attachment: discord.Attachment) -> None:
    if not is_image(attachment):
        raise ValidationError(
            f"{attachment.filename} is not a picture I can look at. Attach a PNG, JPEG, WebP or GIF."
        )
