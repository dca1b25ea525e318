"""How much and how fast, end to end on Discord: the spending limit and its one owner DM, MiniToolAI
refusing the owner, allowed models, rate limits and balances kept out of public channels."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.e2e.discord_harness import DiscordWorld
from tests.fakes.discord_models import MEMBER_PERMISSIONS, FakeUser, SentMessage

MANAGE_SERVER = MEMBER_PERMISSIONS | (1 << 5)
CHAT_PATH = "/api/chat-completions/"


def dms_to(world: DiscordWorld, user: FakeUser, needle: str) -> list[SentMessage]:
    return [m for m in world.dc.messages_in(world.dc.dm_channel(user)) if needle in m.content]


async def test_the_spending_limit_refuses_ephemerally_and_dms_the_owner_once(tmp_path: Path) -> None:
    """Under a daily limit no request fits: three /chat get a private refusal, nothing goes upstream,
    and the owner gets one DM."""
    async with DiscordWorld.open(tmp_path) as world:
        dc, owner = world.dc, world.dc.user("owner")
        limited = {"spending_limit_daily_usd": Decimal("0.000001"), "bot_admin_ids": f"discord:{owner.id}"}
        async with world.bot(**limited):
            refusals = []
            for prompt in ("one", "two", "three"):
                asked = await dc.slash_command(
                    world.guild, world.general, world.alice, "chat", {"prompt": prompt}
                )
                refusals += await world.wait(lambda asked=asked: world.ephemerals(asked))  # type: ignore[misc]
            alerts = await world.wait(lambda: dms_to(world, owner, "reached its daily spending limit"))

    assert 3 == len(refusals)
    assert all("daily spending limit its owner set" in m.content for m in refusals)
    assert 1 == len(alerts)
    assert [] == world.chat_requests()


async def test_minitoolai_refusing_the_key_tells_the_member_privately_and_dms_the_owner(
    tmp_path: Path,
) -> None:
    """402 from MiniToolAI: the member reads (ephemerally) that the owner needs to top up; one owner DM."""
    async with DiscordWorld.open(tmp_path) as world:
        dc, owner = world.dc, world.dc.user("owner")
        world.ai.fail_next(402, {"error": {"message": "Insufficient balance"}}, times=2, path=CHAT_PATH)
        async with world.bot(bot_admin_ids=f"discord:{owner.id}"):
            for who in (world.alice, world.bob):
                asked = await dc.slash_command(world.guild, world.general, who, "chat", {"prompt": "hi"})
                refusal = await world.wait(lambda asked=asked: world.ephemerals(asked))  # type: ignore[misc]
                assert "The bot's owner needs to top up" in refusal[0].content
            alerts = await world.wait(lambda: dms_to(world, owner, "balance is empty"))

    assert 1 == len(alerts)
    assert 2 == len(world.chat_requests())


async def test_a_server_restricts_the_models_of_chat_and_imagine(tmp_path: Path) -> None:
    """/chatmodels and /imagemodels by an admin: /chat model: and /imagine model: outside them are
    refused ephemerally and nothing is sent; without a model the allowed one answers."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot():
            for name, models in (("chatmodels", "gpt-4.1-nano"), ("imagemodels", "dreamshaper")):
                done = await dc.slash_command(
                    world.guild, world.general, world.bob, name, {"models": models}, permissions=MANAGE_SERVER
                )
                await world.wait(lambda done=done: world.original(done) or world.ephemerals(done))  # type: ignore[misc]
            member_try = await dc.slash_command(
                world.guild, world.general, world.alice, "chatmodels", {"models": "all"}
            )
            denied = await world.wait(lambda: world.ephemerals(member_try))
            chat = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "hi", "model": "gpt-4o"}
            )
            refused_chat = await world.wait(lambda: world.ephemerals(chat))
            image = await dc.slash_command(
                world.guild, world.general, world.alice, "imagine", {"prompt": "a fox", "model": "juggernaut"}
            )
            refused_image = await world.wait(lambda: world.ephemerals(image))
            allowed = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "hi"}
            )
            await world.original_with(allowed, "regen")

    assert "Only admins" in denied[0].content
    assert "The chat model gpt-4o is not allowed here" in refused_chat[0].content
    assert "The image model juggernaut is not allowed here" in refused_image[0].content
    assert ["gpt-4.1-nano"] == [body["model"] for body in world.chat_requests()]
    assert [] == world.ai.image_jobs()


async def test_chat_over_the_per_minute_limit_is_asked_to_wait(tmp_path: Path) -> None:
    """USER_MESSAGES_PER_MINUTE=1: the second /chat within the minute is refused ephemerally."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(user_messages_per_minute=1):
            first = await dc.slash_command(world.guild, world.general, world.alice, "chat", {"prompt": "one"})
            await world.original_with(first, "regen")
            second = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "two"}
            )
            refusal = await world.wait(lambda: world.ephemerals(second))

    assert refusal[0].content.startswith("You can send up to 1 message a minute here. Please try again in ")
    assert 1 == len(world.chat_requests())


async def test_out_of_credit_in_a_server_channel_the_balance_goes_by_dm(tmp_path: Path) -> None:
    """A mention without credit: the channel reads one short sentence, the balance arrives by DM;
    /chat shows it ephemerally."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(starting_grant_usd=Decimal("0")):
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> hello")
            public = await world.wait(lambda: dc.bot_messages(world.general))
            details = await world.wait(lambda: dms_to(world, world.alice, "your balance is"))
            asked = await dc.slash_command(world.guild, world.general, world.alice, "chat", {"prompt": "hi"})
            private = await world.wait(lambda: world.ephemerals(asked))

    assert ["You don't have enough credit for this. I sent you the details in a direct message."] == [
        m.content for m in public
    ]
    assert "$0.00" in details[0].content
    assert "your balance is $0.00" in private[0].content
    assert [] == world.chat_requests()
