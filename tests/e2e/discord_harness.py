"""Run the real composition root (``bot.__main__.serve``) against the fake Discord and MiniToolAI.

    async with DiscordWorld.open(tmp_path) as world:
        async with world.bot():                  # serve() until the block ends
            await world.dc.message_create(...)

Readiness is read from the fake: the bot's gateway session has received READY and every
GUILD_CREATE, so injected events arrive after the guilds are cached (``on_ready`` itself
fires ``guild_ready_timeout`` later and nothing here needs it).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Self, TypeVar

from bot.__main__ import serve
from bot.settings import Settings
from tests.fakes.discord import DiscordLimits, FakeDiscord
from tests.fakes.discord_models import (
    FLAG_EPHEMERAL,
    PRIVILEGED_INTENTS,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeUser,
    SentMessage,
)
from tests.fakes.minitoolai import FakeMiniToolAI

CHAT_PATH = "/api/chat-completions/"
T = TypeVar("T")


@dataclasses.dataclass(slots=True)
class DiscordWorld:
    dc: FakeDiscord
    ai: FakeMiniToolAI
    tmp_path: Path
    guild: FakeGuild
    general: FakeChannel
    alice: FakeUser
    bob: FakeUser

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        tmp_path: Path,
        *,
        approved_intents: int = PRIVILEGED_INTENTS,
        limits: DiscordLimits | None = None,
    ) -> AsyncIterator[Self]:
        """``limits``: Discord's windows scaled down (``DiscordLimits.fast()``) unless given."""
        async with (
            FakeDiscord(limits=limits or DiscordLimits.fast(), approved_intents=approved_intents) as dc,
            FakeMiniToolAI() as ai,
        ):
            guild = dc.guild("Test Guild")
            general = dc.text_channel(guild, "general")
            yield cls(dc, ai, tmp_path, guild, general, dc.user("alice"), dc.user("bob"))

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "minitoolai_api_key": self.ai.api_key,
            "minitoolai_base_url": self.ai.base_url,
            "discord_token": self.dc.token,
            "discord_api_base_url": self.dc.api_base,
            "discord_gateway_url": self.dc.gateway_url,
            "database_url": f"sqlite:///{self.tmp_path}/bot.sqlite3",
            "starting_grant_usd": Decimal("1"),
            "log_level": "WARNING",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    @asynccontextmanager
    async def bot(self, **overrides: Any) -> AsyncIterator[None]:
        """The whole bot, running until the block ends (then stopped cleanly)."""
        stop = asyncio.Event()
        known = set(self.dc.gateway.sessions)
        task = asyncio.create_task(serve(self.settings(**overrides), stop))
        ready_seq = 1 + len(self.dc.guilds)  # READY, then one GUILD_CREATE per guild

        def ready() -> bool:
            if task.done():
                return True
            return any(
                s.seq >= ready_seq and s.connection is not None
                for sid, s in self.dc.gateway.sessions.items()
                if sid not in known
            )

        await self.dc.wait_for(ready)
        if task.done():
            task.result()  # the bot died while starting: show why
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    # ------------------------------------------------------------ looking at what happened

    def chat_requests(self) -> list[Any]:
        return [r.json for r in self.ai.requests_to(CHAT_PATH)]

    async def wait(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until ``predicate()`` is truthy (re-checked at every change the fake records)."""
        return await self.dc.wait_for(predicate, timeout)

    async def find(self, finder: Callable[[], T | None], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until ``finder()`` finds something, and return it."""
        found = await self.dc.wait_for(finder, timeout)
        assert found is not None
        return found

    async def original_with(self, interaction: FakeInteraction, kind: str) -> SentMessage:
        """The interaction's response once it carries a ``kind`` button ("stop", "regen")."""

        def check() -> SentMessage | None:
            original = self.original(interaction)
            return original if original is not None and has_button(original, kind) else None

        return await self.find(check)

    async def finished_answer(self, channel: FakeChannel) -> SentMessage:
        """The bot's first message in ``channel`` once it carries the Regenerate button."""
        found = await self.wait(
            lambda: next((m for m in self.dc.bot_messages(channel) if has_button(m, "regen")), None)
        )
        assert found is not None
        return found

    def original(self, interaction: FakeInteraction) -> SentMessage | None:
        if interaction.original_message_id is None:
            return None
        return self.dc.message(interaction.original_message_id)

    def ephemerals(self, interaction: FakeInteraction) -> list[SentMessage]:
        return [
            m
            for m in self.dc.messages
            if m.interaction_token == interaction.token and m.flags & FLAG_EPHEMERAL and m.content
        ]


def custom_ids(message: SentMessage) -> list[str]:
    found: list[str] = []

    def walk(components: list[dict[str, Any]]) -> None:
        for component in components:
            if "custom_id" in component:
                found.append(component["custom_id"])
            walk(component.get("components") or [])

    walk(message.components)
    return found


def has_button(message: SentMessage, kind: str) -> bool:
    return any(cid.startswith(f"mtai:{kind}:") for cid in custom_ids(message))


def button(message: SentMessage, kind: str) -> str:
    return next(cid for cid in custom_ids(message) if cid.startswith(f"mtai:{kind}:"))


def fences_balanced(text: str) -> bool:
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("```")) % 2 == 0
