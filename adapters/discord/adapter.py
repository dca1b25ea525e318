"""The Discord adapter's life cycle: point discord.py at the configured endpoints, connect, serve.

``run(stop)`` creates the client (``AutoShardedClient`` when sharding is configured), starts it
with ``await client.start(token)`` inside the bot's event loop beside the other adapters, and
closes it when ``stop`` is set. At login it installs the slash commands, registers the persistent
buttons, publishes the commands if they changed, and resumes unfinished picture jobs. A gateway
that refuses the message content intent (not enabled in the developer portal) is retried once
without it, with a log line saying how to enable it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.discord import views
from adapters.discord.access import AccessGate
from adapters.discord.chat import ChatFlows
from adapters.discord.commands import CommandSet
from adapters.discord.config import DiscordConfig
from adapters.discord.images import ImageFlows
from adapters.discord.language import CatalogTranslator
from adapters.discord.messages import MessageFlows
from adapters.discord.pacing import ChannelPacing, GlobalGate, RateBook
from adapters.discord.places import PLATFORM
from adapters.discord.private import DiscordPrivate
from adapters.discord.replies import log_error
from adapters.discord.sync import sync_if_changed
from bot.core import Core
from bot.errors import ConfigError, PlatformUnavailable
from bot.ops import context as ops_context

logger = logging.getLogger(__name__)

INTENT_HELP = (
    "Discord message content intent is off: the bot answers slash commands, mentions, replies and DMs "
    "only. To let it read other messages (threads it opened, for instance), enable MESSAGE CONTENT INTENT "
    "under Bot → Privileged Gateway Intents in the Discord developer portal and set DISCORD_MESSAGE_CONTENT=true."
)


@contextlib.contextmanager
def pointed_at(config: DiscordConfig) -> Iterator[None]:
    """discord.py reads its endpoints from class attributes: set them for this run, then restore."""
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    if config.api_base_url:
        discord.http.Route.BASE = config.api_base_url.rstrip("/")
    if config.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


class _Buttons:
    """The persistent buttons' handlers: chat ones and picture ones."""

    def __init__(self, chat: ChatFlows, images: ImageFlows, gate: AccessGate) -> None:
        self.admit = gate.admit_interaction
        self.stop = chat.stop
        self.regenerate = chat.regenerate
        self.image_regenerate = images.image_regenerate
        self.image_delete = images.image_delete


class DiscordAdapter:
    name = "discord"

    def __init__(self, core: Core, config: DiscordConfig) -> None:
        self._core = core
        self._config = config
        self._rates = RateBook(config.edit_interval)
        # A channel's route belongs to one process (its guild's shard); the bot-wide budget is
        # shared by every shard process through Redis when REDIS_URL is set.
        namespace = hashlib.sha256(config.token.encode()).hexdigest()[:16]  # per bot, not the token
        gate = GlobalGate(shared=config.shared_limits, name=f"discord:{namespace}:global")
        self._pacing = ChannelPacing(self._rates, gate)
        # A text bot needs no voice: discord.py's start-up warnings about voice libraries are noise.
        logging.getLogger("discord.client").addFilter(_not_about_voice)

    async def run(self, stop: asyncio.Event) -> None:
        message_content = self._config.message_content
        with pointed_at(self._config):
            while True:
                if not message_content:
                    logger.warning(INTENT_HELP)
                try:
                    await self._serve(*self._client(message_content=message_content), stop)
                except discord.PrivilegedIntentsRequired:
                    if not message_content:
                        raise
                    logger.warning("Discord refused the message content intent; going on without it.")
                    message_content = False
                    continue
                except discord.LoginFailure:
                    raise ConfigError("Discord refused DISCORD_TOKEN. Check the bot token in .env.") from None
                except (aiohttp.ClientError, OSError) as exc:
                    where = self._config.api_base_url or "discord.com"
                    raise PlatformUnavailable(
                        f"Discord could not be reached at {where} ({type(exc).__name__}). "
                        "Check the network, or DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL."
                    ) from None
                return

    def _client(self, *, message_content: bool) -> tuple[discord.Client, ChatFlows]:
        intents = discord.Intents.default()
        intents.message_content = message_content
        options: dict[str, Any] = {
            "intents": intents,
            "guild_ready_timeout": self._config.guild_ready_timeout,
            "http_trace": self._pacing.trace_config(),
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        config = self._config
        if config.shard_ids is None and config.shard_count is None:
            client = discord.Client(**options)
        else:
            if config.shard_ids is not None:
                options["shard_ids"] = config.shard_ids
            client = discord.AutoShardedClient(shard_count=config.shard_count, **options)
        return client, self._wire(client)

    def _wire(self, client: discord.Client) -> ChatFlows:
        chat = ChatFlows(self._core, self._pacing, self._config)
        images = ImageFlows(self._core, client)
        messages = MessageFlows(self._core, chat, self._config)
        tree = app_commands.CommandTree(client)
        CommandSet(self._core, chat, images, self._config).install(tree)
        views.bind(client, _Buttons(chat, images, AccessGate(self._core)))

        async def setup_hook() -> None:
            await self._setup(client, tree, images)

        link = self._core.health.platform(self.name)  # readiness: the gateway is connected

        async def on_connect() -> None:
            link.connected()

        async def on_resumed() -> None:
            link.connected()

        async def on_disconnect() -> None:
            link.disconnected("the gateway connection closed")

        async def on_message(message: discord.Message) -> None:
            ops_context.begin(PLATFORM)  # a request id for this event's log lines
            if client.user is not None:
                await messages.on_message(client.user, message)

        async def on_ready() -> None:
            logger.info("Discord: connected as %s to %d servers", client.user, len(client.guilds))

        async def on_error(event: str, *args: object, **kwargs: object) -> None:
            log_error(_current_exception(), f"Discord event {event}")

        client.setup_hook = setup_hook  # type: ignore[method-assign]
        for handler in (on_message, on_ready, on_error, on_connect, on_resumed, on_disconnect):
            client.event(handler)
        return chat

    async def _setup(
        self, client: discord.Client, tree: app_commands.CommandTree, images: ImageFlows
    ) -> None:
        assert client.application_id is not None  # set by login, before setup_hook
        await tree.set_translator(CatalogTranslator())  # tr and no localizations from the catalogs
        await sync_if_changed(
            tree, self._core.credits.store, client.application_id, self._config.dev_guild_id
        )
        self._core.images.register_platform(PLATFORM, images)
        self._core.credits.alerts.register(PLATFORM, DiscordPrivate(client))
        resumed = await self._core.images.resume(PLATFORM)
        if resumed:
            logger.info("resumed %d picture jobs", resumed)

    async def _serve(self, client: discord.Client, chat: ChatFlows, stop: asyncio.Event) -> None:
        runner = asyncio.create_task(client.start(self._config.token), name="discord-client")
        stopper = asyncio.create_task(stop.wait(), name="discord-stop")
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            await chat.shutdown()
            # Also after a failed start: close() releases the HTTP session either way.
            await client.close()
            await runner
            await _finish_event_tasks()


async def _finish_event_tasks(grace: float = 5.0) -> None:
    """discord.py runs each event handler as a task of its own ("discord.py: on_message"), which
    ``close()`` leaves running: give them ``grace`` seconds to end (answers were interrupted), then
    cancel the rest, so that none is cut off half-way when the event loop ends."""
    pending = [t for t in asyncio.all_tasks() if t.get_name().startswith("discord.py: ") and not t.done()]
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=grace)
    for task in late:
        task.cancel()
    if late:
        logger.warning("cancelled %d Discord event handler(s) still running at shutdown", len(late))
        await asyncio.gather(*late, return_exceptions=True)


def _not_about_voice(record: logging.LogRecord) -> bool:
    return "voice will NOT be supported" not in record.getMessage()


def _current_exception() -> BaseException:
    # discord.py calls on_error from inside its ``except`` block.
    exc = sys.exc_info()[1]
    return exc if exc is not None else RuntimeError("unknown error")
