"""The Discord adapter: discord.py client, slash commands, persistent buttons, streaming surfaces.

adapter.py      life cycle: endpoints, client (sharded or not), start / close, command sync
commands.py     the slash commands, one core call each
messages.py     mentions, replies, DMs and auto-threads
chat.py         streaming an answer to an interaction or a message; Stop / Regenerate
surface.py      the Surfaces: interaction response + follow-ups, channel messages
images.py       /imagine, the ImageSurface (file + embed) and picture buttons
views.py        persistent buttons keyed by custom_id
pacing.py       per-channel edit budget learned from Discord's rate-limit headers
sync.py         publish commands only when their definitions changed
"""

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.config import DiscordConfig

__all__ = ["DiscordAdapter", "DiscordConfig"]
