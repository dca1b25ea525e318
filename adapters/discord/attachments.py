"""Files people attach (to /chat or to a message for the bot), downloaded as bytes.

Every attachment goes to the core, which decides by content what it is (a picture, a text file,
a PDF) and refuses the rest in one sentence. The core sends pictures to the model as ``data:``
URLs; nothing keeps a Discord CDN link.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.chat.attachments import Upload
from bot.chat.conversations import MAX_FILES_PER_MESSAGE
from bot.errors import ValidationError
from bot.i18n import _, number


async def download_files(attachments: Sequence[discord.Attachment], max_bytes: int) -> tuple[Upload, ...]:
    """Every attachment's bytes with its file name.

    Raises ``ValidationError`` for too many files, a file over ``max_bytes`` (checked before
    downloading) or one that cannot be fetched.
    """
    if len(attachments) > MAX_FILES_PER_MESSAGE:
        raise ValidationError(_("Please attach at most {n} files per message.", n=MAX_FILES_PER_MESSAGE))
    files = []
    for attachment in attachments:
        if attachment.size > max_bytes:
            megabytes = round(attachment.size / 1024 / 1024, 1)
            raise ValidationError(
                _(
                    "{name} is too large ({size} MB; at most {limit} MB).",
                    name=attachment.filename,
                    size=number(megabytes, 1),
                    limit=max_bytes // 1024 // 1024,
                )
            )
        try:
            data = await attachment.read()
        except discord.HTTPException:
            raise ValidationError(
                _("I could not download {name}. Please try again.", name=attachment.filename)
            ) from None
        files.append(Upload(attachment.filename, data))
    return tuple(files)
