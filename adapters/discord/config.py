"""The Discord adapter's settings, as the composition root hands them over."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.chat.attachments import MAX_UPLOAD_BYTES
from bot.ports import SharedLimits


@dataclass(frozen=True, slots=True)
class DiscordConfig:
    """What a server owner sets for Discord (``DISCORD_*``), plus tuning with safe defaults.

    ``shard_ids`` / ``shard_count`` select sharding: neither set runs one plain client; either
    set runs an ``AutoShardedClient`` (all shards here, or only ``shard_ids`` of
    ``shard_count`` when several processes share one database).
    """

    token: str = field(repr=False)  # never in a log line or a traceback's locals
    api_base_url: str | None = None
    gateway_url: str | None = None
    dev_guild_id: int | None = None
    shard_ids: list[int] | None = None
    shard_count: int | None = None
    message_content: bool = True
    # discord.py waits this long after the last GUILD_CREATE before on_ready.
    guild_ready_timeout: float = 2.0
    # Pacing before Discord has told us its limits (read from X-RateLimit-* headers after that).
    edit_interval: float = 1.1
    # An interaction token lives 15 minutes; after this much of it, answers move to the channel.
    interaction_window: float = 14 * 60.0
    # Bytes of one attached file (picture or document) the bot downloads for the model.
    max_image_bytes: int = MAX_UPLOAD_BYTES
    # With REDIS_URL: the bot-wide budget shared by every shard process (None: per process).
    shared_limits: SharedLimits | None = None
