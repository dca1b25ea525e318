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


async def download_files(attachments: Sequence[discord.Attachment], max_bytes: int) -> tuple[Upload, ...]:
    """Every attachment's bytes with its file name.

    Raises ``ValidationError`` for too many files, a file over ``max_bytes`` (checked before
    downloading) or one that cannot be fetched.
    """
    if len(attachments) > MAX_FILES_PER_MESSAGE:
        raise ValidationError(f"Please attach at most {MAX_FILES_PER_MESSAGE} files per message.")
    files = []
    for attachment in attachments:
        if attachment.size > max_bytes:
            raise ValidationError(
                f"{attachment.filename} is too large ({attachment.size / 1024 / 1024:.1f} MB; "
                f"at most {max_bytes // 1024 // 1024} MB)."
            )
        try:
            data = await attachment.read()
        except discord.HTTPException:
            raise ValidationError(f"I could not download {attachment.filename}. Please try again.") from None
        files.append(Upload(attachment.filename, data))
    return tuple(files)
