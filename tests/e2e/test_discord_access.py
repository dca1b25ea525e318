"""Who and where on Discord, end to end: servers, channels, threads, roles, DMs, blocks, owners,
run-time /allow and /block across a restart, /disable, /enable and reply-all channels.

A refused request must reach no MiniToolAI call and open no account; slash commands and buttons
are refused ephemerally, a server channel hears once that the bot is not enabled there.
"""

from __future__ import annotations

from pathlib import Path

import storage
from bot.access.policy import CHAT_REFUSAL, PRIVATE_REFUSAL, USER_REFUSAL
from bot.access.service import CHAT_OFF, IMAGES_OFF
from bot.ports import Account
from tests.e2e.discord_harness import DiscordWorld, button, custom_ids
from tests.e2e.test_discord_images import finished_images
from tests.fakes.discord_models import MEMBER_PERMISSIONS, FakeChannel, FakeInteraction, FakeUser
from tests.fakes.minitoolai import ChatScript

MANAGE_SERVER = MEMBER_PERMISSIONS | (1 << 5)


def mention(world: DiscordWorld, text: str) -> str:
    return f"<@{world.dc.bot_user.id}> {text}"


async def balance(tmp_path: Path, user: FakeUser) -> int | None:
    """The user's balance in the bot's database; None when no account was ever opened."""
    store = await storage.open_store(f"sqlite:///{tmp_path}/bot.sqlite3")
    try:
        return await store.balance(Account("discord", str(user.id)))
    finally:
        await store.close()


async def refusal(world: DiscordWorld, interaction: FakeInteraction) -> str:
    found = await world.wait(lambda: world.ephemerals(interaction))
    return found[0].content


def texts(world: DiscordWorld, channel: FakeChannel) -> list[str]:
    return [m.content for m in world.dc.bot_messages(channel) if not m.interaction_token]


async def test_allowed_users_are_served_anywhere_and_nobody_else(tmp_path: Path) -> None:
    """ALLOWED_USERS=discord:<alice>: Alice is served in the server and in her DM; Bob is refused, without an account."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        dm = dc.dm_channel(world.alice)
        async with world.bot(allowed_users=f"discord:{world.alice.id}"):
            served = await dc.slash_command(world.guild, world.general, world.alice, "chat", {"prompt": "hi"})
            await world.original_with(served, "regen")
            await dc.message_create(dm, world.alice, "and in private")
            await world.finished_answer(dm)
            refused = await dc.slash_command(world.guild, world.general, world.bob, "credits")
            bob_refusal = await refusal(world, refused)
        assert CHAT_REFUSAL == bob_refusal
        assert 2 == len(world.chat_requests())
    assert await balance(tmp_path, world.bob) is None


async def test_only_the_allowed_server_is_served(tmp_path: Path) -> None:
    """ALLOWED_CHATS=discord:<server>: served there; elsewhere "not enabled" once, /chat refused ephemerally, no account."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        other = dc.guild("Other")
        lobby = dc.text_channel(other, "lobby")
        async with world.bot(allowed_chats=f"discord:{world.guild.id}"):
            await dc.message_create(lobby, world.bob, mention(world, "hello"))
            await world.wait(lambda: texts(world, lobby))
            await dc.message_create(lobby, world.bob, mention(world, "hello again"))
            chat = await dc.slash_command(other, lobby, world.bob, "chat", {"prompt": "hi"})
            refused = await refusal(world, chat)
            await dc.message_create(world.general, world.alice, mention(world, "hello"))
            await world.finished_answer(world.general)
        assert [CHAT_REFUSAL] == texts(world, lobby)
        assert CHAT_REFUSAL == refused
        assert 1 == len(world.chat_requests())
    assert await balance(tmp_path, world.bob) is None


async def test_an_allowed_channel_covers_its_threads_but_not_other_channels(tmp_path: Path) -> None:
    """ALLOWED_CHATS=discord:<channel>: the channel and its threads are served, another channel is not."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        thread = dc.thread(world.general, "side talk", owner=world.alice)
        random = dc.text_channel(world.guild, "random")
        async with world.bot(allowed_chats=f"discord:{world.general.id}"):
            await dc.message_create(thread, world.alice, mention(world, "in the thread"))
            await world.finished_answer(thread)
            chat = await dc.slash_command(world.guild, random, world.alice, "chat", {"prompt": "hi"})
            refused = await refusal(world, chat)
        assert CHAT_REFUSAL == refused
        assert 1 == len(world.chat_requests())


async def test_an_allowed_role_lets_its_members_in_and_nobody_else(tmp_path: Path) -> None:
    """ALLOWED_ROLES: a member with the role is served, one without is refused; roles do not count in a DM."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        friends = dc.role(world.guild, "friends")
        dc.give_role(world.guild, world.alice, friends)
        async with world.bot(allowed_roles=f"discord:{friends}"):
            served = await dc.slash_command(world.guild, world.general, world.alice, "chat", {"prompt": "hi"})
            await world.original_with(served, "regen")
            refused = await dc.slash_command(world.guild, world.general, world.bob, "chat", {"prompt": "hi"})
            bob_refusal = await refusal(world, refused)
            dm = dc.dm_channel(world.alice)
            await dc.message_create(dm, world.alice, "hi in private")
            await world.wait(lambda: texts(world, dm))
        assert CHAT_REFUSAL == bob_refusal
        assert [PRIVATE_REFUSAL] == texts(world, dm)
        assert 1 == len(world.chat_requests())
    assert await balance(tmp_path, world.bob) is None


async def test_a_block_wins_and_owners_always_pass(tmp_path: Path) -> None:
    """A blocked member of an allowed server is refused; a BOT_ADMIN_IDS owner is served though blocked."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        owner = dc.user("owner")
        settings = {
            "allowed_chats": f"discord:{world.guild.id}",
            "blocked_users": f"discord:{world.bob.id},discord:{owner.id}",
            "bot_admin_ids": f"discord:{owner.id}",
        }
        async with world.bot(**settings):
            refused = await dc.slash_command(world.guild, world.general, world.bob, "chat", {"prompt": "hi"})
            bob_refusal = await refusal(world, refused)
            await dc.message_create(world.general, world.bob, mention(world, "hello"))
            await world.wait(lambda: texts(world, world.general))
            await dc.message_create(world.general, world.bob, mention(world, "hello?"))
            dm = dc.dm_channel(owner)
            await dc.message_create(dm, owner, "owner here")
            await world.finished_answer(dm)
        assert USER_REFUSAL == bob_refusal
        assert [USER_REFUSAL] == texts(world, world.general)
        assert 1 == len(world.chat_requests())


async def test_direct_messages_can_be_closed(tmp_path: Path) -> None:
    """ALLOW_PRIVATE=false: a DM gets one sentence per message and no answer; the server still works."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        dm = dc.dm_channel(world.alice)
        async with world.bot(allow_private=False):
            await dc.message_create(dm, world.alice, "hi")
            await world.wait(lambda: texts(world, dm))
            chat = await dc.slash_command(None, dm, world.alice, "chat", {"prompt": "hi"})
            refused = await refusal(world, chat)
            await dc.message_create(world.general, world.alice, mention(world, "hello"))
            await world.finished_answer(world.general)
        assert [PRIVATE_REFUSAL] == texts(world, dm)
        assert PRIVATE_REFUSAL == refused
        assert 1 == len(world.chat_requests())


async def test_run_time_allow_and_block_hold_after_a_restart(tmp_path: Path) -> None:
    """/allow server and /block user by an owner apply at once and after a restart; buttons obey them too."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        owner = dc.user("owner")
        other = dc.guild("Other")
        lobby = dc.text_channel(other, "lobby")
        desk = dc.dm_channel(owner)
        admins = {"bot_admin_ids": f"discord:{owner.id}"}
        async with world.bot(**admins):
            await dc.message_create(world.general, world.alice, mention(world, "hi"))
            answer = await world.finished_answer(world.general)
            member = await dc.slash_command(
                world.guild,
                world.general,
                world.bob,
                "block",
                {"what": "user", "target": str(world.alice.id)},
                permissions=MANAGE_SERVER,
            )
            member_refusal = await refusal(world, member)
            allow = await dc.slash_command(
                None, desk, owner, "allow", {"what": "server", "target": str(world.guild.id)}
            )
            allowed = await refusal(world, allow)
            block = await dc.slash_command(
                None, desk, owner, "block", {"what": "user", "target": f"<@{world.alice.id}>"}
            )
            blocked = await refusal(world, block)
        async with world.bot(**admins):
            click = await dc.component_click(answer, world.alice, button(answer, "regen"))
            click_refusal = await refusal(world, click)
            await dc.message_create(lobby, world.bob, mention(world, "hello"))
            await world.wait(lambda: texts(world, lobby))
            served = await dc.slash_command(world.guild, world.general, world.bob, "chat", {"prompt": "hi"})
            await world.original_with(served, "regen")
            listing = await dc.slash_command(None, desk, owner, "access")
            listed = await refusal(world, listing)
        assert "Only the bot's owner" in member_refusal
        assert f"Chat discord:{world.guild.id} is allowed now." == allowed
        assert f"User discord:{world.alice.id} is blocked now." == blocked
        assert USER_REFUSAL == click_refusal
        assert [CHAT_REFUSAL] == texts(world, lobby)
        assert f"Blocked users: discord:{world.alice.id}" in listed
        assert 2 == len(world.chat_requests())


async def test_admins_switch_chat_and_pictures_off_and_on_per_channel(tmp_path: Path) -> None:
    """/disable chat quiets mentions (said once) and refuses /chat; /disable images refuses /imagine; /enable restores."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        random = dc.text_channel(world.guild, "random")
        async with world.bot():
            member = await dc.slash_command(
                world.guild, world.general, world.bob, "disable", {"what": "chat"}
            )
            member_refusal = await refusal(world, member)
            for what in ("chat", "images"):
                done = await dc.slash_command(
                    world.guild,
                    world.general,
                    world.alice,
                    "disable",
                    {"what": what},
                    permissions=MANAGE_SERVER,
                )
                await world.wait(lambda done=done: world.original(done))
            await dc.message_create(world.general, world.bob, mention(world, "hello"))
            await world.wait(lambda: texts(world, world.general))
            await dc.message_create(world.general, world.bob, mention(world, "hello?"))
            chat = await dc.slash_command(world.guild, world.general, world.bob, "chat", {"prompt": "hi"})
            chat_refusal = await refusal(world, chat)
            imagine = await dc.slash_command(
                world.guild, world.general, world.bob, "imagine", {"prompt": "a fox"}
            )
            imagine_refusal = await refusal(world, imagine)
            await dc.message_create(random, world.bob, mention(world, "other channel"))
            await world.finished_answer(random)
            enable = await dc.slash_command(
                world.guild, world.general, world.alice, "enable", {"what": "chat"}, permissions=MANAGE_SERVER
            )
            await world.wait(lambda: world.original(enable))
            await dc.message_create(world.general, world.bob, mention(world, "back?"))
            await world.finished_answer(world.general)
        assert "Only admins" in member_refusal
        assert CHAT_OFF == chat_refusal
        assert IMAGES_OFF == imagine_refusal
        assert 1 == texts(world, world.general).count(CHAT_OFF)
        assert 2 == len(world.chat_requests())
        assert [] == world.ai.requests_to("/api/texttoimage/")


async def test_a_reply_all_channel_answers_every_message(tmp_path: Path) -> None:
    """/replyall on: plain messages in the channel (and its threads) are answered; off: mentions only again."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        random = dc.text_channel(world.guild, "random")
        world.ai.chat_scripts.extend([ChatScript(tokens=["Four."]), ChatScript(tokens=["Sure."])])
        async with world.bot():
            on = await dc.slash_command(
                world.guild,
                world.general,
                world.alice,
                "replyall",
                {"enabled": True},
                permissions=MANAGE_SERVER,
            )
            await world.wait(lambda: world.original(on))
            await dc.message_create(random, world.bob, "just chatting")
            await dc.message_create(world.general, world.bob, "what is 2 + 2?")
            await world.finished_answer(world.general)
            off = await dc.slash_command(
                world.guild,
                world.general,
                world.alice,
                "replyall",
                {"enabled": False},
                permissions=MANAGE_SERVER,
            )
            await world.wait(lambda: world.original(off))
            await dc.message_create(world.general, world.bob, "and now?")
            await dc.message_create(world.general, world.bob, mention(world, "and now, addressed?"))
            await world.wait(lambda: any(m.content == "Sure." for m in dc.bot_messages(world.general)))
        prompts = [str(r["messages"][-1]["content"]) for r in world.chat_requests()]
        assert 2 == len(prompts)
        assert "what is 2 + 2?" in prompts[0]
        assert "addressed" in prompts[1]
        assert [] == texts(world, random)


async def test_an_owner_stops_someone_elses_answer_without_manage_server(tmp_path: Path) -> None:
    """BOT_ADMIN_IDS are admins everywhere: Stop on a member's answer works for them, not for another member."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        owner = dc.user("owner")
        world.ai.chat_scripts.append(ChatScript(tokens=["tick "] * 2000, delay=0.01))
        async with world.bot(bot_admin_ids=f"discord:{owner.id}"):
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "go"}
            )
            original = await world.original_with(interaction, "stop")
            bob_click = await dc.component_click(original, world.bob, button(original, "stop"))
            bob_refusal = await refusal(world, bob_click)
            await dc.component_click(original, owner, button(original, "stop"))
            await world.ai.wait_cancelled()
        assert "Only the person who asked, or an admin" in bob_refusal


async def test_an_owner_deletes_someone_elses_picture_without_manage_server(tmp_path: Path) -> None:
    """BOT_ADMIN_IDS may delete any picture: Bob's Delete is refused, the owner's removes Alice's picture."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        owner = dc.user("owner")
        fast = {
            "image_poll_initial_seconds": 0.01,
            "image_poll_max_seconds": 0.02,
            "image_progress_interval_seconds": 0,
        }
        async with world.bot(bot_admin_ids=f"discord:{owner.id}", **fast):
            await dc.slash_command(world.guild, world.general, world.alice, "imagine", {"prompt": "a boat"})
            image = (await world.wait(lambda: finished_images(world, world.general), timeout=10))[0]
            delete = next(c for c in custom_ids(image) if c.startswith("mtai:img:del:"))
            refused = await dc.component_click(image, world.bob, delete)
            bob_refusal = await refusal(world, refused)
            still_there = not image.deleted
            done = await dc.component_click(image, owner, delete)
            await world.wait(lambda: image.deleted and world.ephemerals(done))
        assert still_there
        assert "Only the person who asked" in bob_refusal
