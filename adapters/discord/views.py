"""Buttons that keep working after a restart: persistent items keyed by their ``custom_id``.

Each button is a ``DynamicItem`` whose ``custom_id`` carries everything its handler needs, so
the bot registers the templates once at start and any old message's button still reaches it:

    mtai:stop:<channel id>:<asker id>     stop the answer being written there
    mtai:regen:<channel id>:<asker id>    answer the last message again
    mtai:img:regen:<job id>               make the same picture again
    mtai:img:del:<job id>                 delete the picture (its requester or an admin)

The handlers live in :mod:`adapters.discord.chat` and :mod:`adapters.discord.images`; a
client is bound to them with :func:`bind`.
"""

from __future__ import annotations

import re
import weakref
from typing import Any, Protocol

import discord

from adapters.discord.replies import guarded
from bot.i18n import _


class ButtonHandlers(Protocol):
    async def admit(self, interaction: discord.Interaction) -> bool:
        """The access gate: False (after an ephemeral refusal) when this person may not use the bot here."""

    async def stop(self, interaction: discord.Interaction, channel_id: int, asker_id: int) -> None: ...

    async def regenerate(self, interaction: discord.Interaction, channel_id: int, asker_id: int) -> None: ...

    async def image_regenerate(self, interaction: discord.Interaction, job_id: str) -> None: ...

    async def image_delete(self, interaction: discord.Interaction, job_id: str) -> None: ...


_BOUND: weakref.WeakKeyDictionary[discord.Client, ButtonHandlers] = weakref.WeakKeyDictionary()


def bind(client: discord.Client, handlers: ButtonHandlers) -> None:
    """Route this client's button clicks to ``handlers`` and register the templates."""
    _BOUND[client] = handlers
    client.add_dynamic_items(StopButton, RegenerateButton, ImageRegenerateButton, ImageDeleteButton)


def _handlers(interaction: discord.Interaction) -> ButtonHandlers:
    return _BOUND[interaction.client]


class _Gated:
    """Buttons pass the access gate before their callback (discord.py asks ``interaction_check``)."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await _handlers(interaction).admit(interaction)


class StopButton(
    _Gated,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"mtai:stop:(?P<channel>\d+):(?P<user>\d+)",
):
    def __init__(self, channel_id: int, asker_id: int) -> None:
        self.channel_id, self.asker_id = channel_id, asker_id
        super().__init__(
            discord.ui.Button(
                label=_("Stop"),
                style=discord.ButtonStyle.secondary,
                custom_id=f"mtai:stop:{channel_id}:{asker_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> StopButton:
        return cls(int(match["channel"]), int(match["user"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handlers = _handlers(interaction)
        await guarded(interaction, handlers.stop(interaction, self.channel_id, self.asker_id), "stop button")


class RegenerateButton(
    _Gated,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"mtai:regen:(?P<channel>\d+):(?P<user>\d+)",
):
    def __init__(self, channel_id: int, asker_id: int) -> None:
        self.channel_id, self.asker_id = channel_id, asker_id
        super().__init__(
            discord.ui.Button(
                label=_("Regenerate"),
                style=discord.ButtonStyle.secondary,
                custom_id=f"mtai:regen:{channel_id}:{asker_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RegenerateButton:
        return cls(int(match["channel"]), int(match["user"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handlers = _handlers(interaction)
        await guarded(
            interaction, handlers.regenerate(interaction, self.channel_id, self.asker_id), "regenerate button"
        )


class ImageRegenerateButton(
    _Gated, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"mtai:img:regen:(?P<job>\w+)"
):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            discord.ui.Button(
                label=_("Regenerate"),
                style=discord.ButtonStyle.secondary,
                custom_id=f"mtai:img:regen:{job_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ImageRegenerateButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        handlers = _handlers(interaction)
        await guarded(
            interaction, handlers.image_regenerate(interaction, self.job_id), "image regenerate button"
        )


class ImageDeleteButton(
    _Gated, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"mtai:img:del:(?P<job>\w+)"
):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            discord.ui.Button(
                label=_("Delete"), style=discord.ButtonStyle.danger, custom_id=f"mtai:img:del:{job_id}"
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ImageDeleteButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        handlers = _handlers(interaction)
        await guarded(interaction, handlers.image_delete(interaction, self.job_id), "image delete button")


def view_of(*items: discord.ui.Item[Any]) -> discord.ui.View:
    """A persistent view (no timeout) holding ``items``."""
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def stop_view(channel_id: int, asker_id: int) -> discord.ui.View:
    return view_of(StopButton(channel_id, asker_id))


def regenerate_view(channel_id: int, asker_id: int) -> discord.ui.View:
    return view_of(RegenerateButton(channel_id, asker_id))


def image_view(job_id: str) -> discord.ui.View:
    return view_of(ImageRegenerateButton(job_id), ImageDeleteButton(job_id))
