"""Pictures on Discord: /imagine, the ImageSurface the image service posts through, and its buttons.

Progress is a plain channel message (editable after a restart, unlike an interaction token);
the finished picture is uploaded as a file within the channel's upload limit (what the last
interaction there announced, else the guild's tier limit) with an embed naming prompt, model,
size, steps and cost, and persistent Regenerate / Delete buttons. Handles are
``"<channel id>:<message id>"`` so a rebuilt surface understands the ones stored with a job.
"""

from __future__ import annotations

import io
import logging
import mimetypes
from collections.abc import Awaitable, Callable

import discord

from adapters.discord.places import account, interaction_actor, interaction_is_admin, interaction_place
from adapters.discord.replies import NO_PINGS, log_error, reply, user_text
from adapters.discord.views import image_view
from bot.core import Core
from bot.display.text import truncate
from bot.errors import ValidationError
from bot.i18n import N_, _, privately
from bot.images.options import ImageOptions
from bot.images.service import ImageService
from bot.minitoolai.types import DownloadedImage
from bot.ports import ImageJob

logger = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
EMBED_DESCRIPTION = 4096


def _handle(channel_id: int, message_id: int) -> str:
    return f"{channel_id}:{message_id}"


def _parse(handle: str) -> tuple[int, int]:
    channel_id, _, message_id = handle.partition(":")
    return int(channel_id), int(message_id)


def image_embed(caption: str, filename: str) -> discord.Embed:
    """Prompt as the description; model, size, steps and cost as fields (from ``caption_for``)."""
    prompt, _, details = caption.rpartition("\n")
    parts = details.split(" · ")
    embed = discord.Embed(description=truncate(prompt or caption, EMBED_DESCRIPTION))
    if len(parts) == 4:
        for name, value in zip(("Model", "Size", "Steps", "Cost"), parts, strict=True):
            embed.add_field(name=name, value=value, inline=True)
    embed.set_image(url=f"attachment://{filename}")
    return embed


class DiscordImageSurface:
    """One channel, as the image service sees it."""

    caption_limit = EMBED_DESCRIPTION

    def __init__(self, client: discord.Client, channel_id: int, upload_limit: int) -> None:
        self._client = client
        self._channel_id = channel_id
        self._upload_limit = upload_limit

    def _channel(self, channel_id: int | None = None) -> discord.abc.Messageable:
        wanted = channel_id or self._channel_id
        channel = self._client.get_channel(wanted)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return self._client.get_partial_messageable(wanted)

    async def show_progress(self, text: str) -> str:
        message = await self._channel().send(text, allowed_mentions=NO_PINGS)
        return _handle(self._channel_id, message.id)

    async def edit_progress(self, handle: str, text: str) -> None:
        channel_id, message_id = _parse(handle)
        partial = self._channel(channel_id).get_partial_message(message_id)  # type: ignore[attr-defined]
        await partial.edit(content=text, allowed_mentions=NO_PINGS)

    async def post_image(
        self, image: DownloadedImage, caption: str, job_id: str, *, reply_to: str | None
    ) -> str:
        if len(image.data) > self._upload_limit:
            raise ValidationError(
                f"the picture is {len(image.data) // 1024} KB, more than this channel's upload limit"
            )
        extension = mimetypes.guess_extension(image.mime) or ".png"
        filename = f"image-{job_id[:12]}{extension}"
        file = discord.File(io.BytesIO(image.data), filename=filename)
        message = await self._channel().send(
            file=file,
            embed=image_embed(caption, filename),
            view=image_view(job_id),
            allowed_mentions=NO_PINGS,
        )
        return _handle(self._channel_id, message.id)

    async def delete(self, handle: str) -> None:
        channel_id, message_id = _parse(handle)
        await self._channel(channel_id).get_partial_message(message_id).delete()  # type: ignore[attr-defined]


class ImageFlows:
    """/imagine and the picture buttons; also the ``SurfaceFactory`` for resumed jobs."""

    def __init__(self, core: Core, client: discord.Client) -> None:
        self._core = core
        self._client = client
        self._upload_limits: dict[int, int] = {}  # channel id -> bytes, as interactions announce

    @property
    def service(self) -> ImageService:
        return self._core.images

    def surface(self, channel_id: int) -> DiscordImageSurface:
        return DiscordImageSurface(self._client, channel_id, self._upload_limit(channel_id))

    def for_job(self, job: ImageJob) -> DiscordImageSurface:
        return self.surface(int(job.place.channel))

    def _upload_limit(self, channel_id: int) -> int:
        known = self._upload_limits.get(channel_id)
        if known is not None:
            return known
        channel = self._client.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return guild.filesize_limit if isinstance(guild, discord.Guild) else DEFAULT_UPLOAD_LIMIT

    def note(self, interaction: discord.Interaction) -> None:
        """Remember the upload limit Discord announced for this channel."""
        if interaction.channel_id is not None:
            self._upload_limits[interaction.channel_id] = interaction.filesize_limit

    async def imagine(self, interaction: discord.Interaction, options: ImageOptions) -> None:
        channel_id = interaction.channel_id or 0
        await self._privately(
            interaction,
            lambda: self._submit(interaction, options, channel_id),
            what="/imagine",
            done=N_("Your picture is on its way: watch this channel."),
        )

    async def _submit(
        self, interaction: discord.Interaction, options: ImageOptions, channel_id: int
    ) -> object:
        place = interaction_place(interaction)
        return await self.service.submit(
            account(interaction.user),
            place,
            options,
            self.surface(channel_id),
            is_admin=interaction_is_admin(interaction),
        )

    async def image_regenerate(self, interaction: discord.Interaction, job_id: str) -> None:
        channel_id = interaction.channel_id or 0
        await self._privately(
            interaction,
            lambda: self.service.regenerate(
                job_id,
                account(interaction.user),
                self.surface(channel_id),
                is_admin=interaction_is_admin(interaction),
            ),
            what="image regenerate",
            done=N_("Making it again…"),
        )

    async def _privately(
        self, interaction: discord.Interaction, call: Callable[[], Awaitable[object]], *, what: str, done: str
    ) -> None:
        """Defer with an ephemeral "thinking…", run ``call``, then say ``done`` or the error's sentence
        (both only to the member: in their language)."""
        self.note(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        with privately():
            try:
                await call()
            except Exception as exc:
                log_error(exc, what)
                await interaction.edit_original_response(content=user_text(exc))
                return
            await interaction.edit_original_response(content=_(done))

    async def image_delete(self, interaction: discord.Interaction, job_id: str) -> None:
        # Manage Server here, and BOT_ADMIN_IDS everywhere, may delete someone else's picture.
        is_admin = self._core.prefs.is_admin(interaction_actor(interaction))
        await self.service.delete(job_id, account(interaction.user), is_admin=is_admin)
        with privately():
            await reply(interaction, _("Deleted."), ephemeral=True)
