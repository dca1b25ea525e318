"""The Discord adapter end to end: the real composition root and discord.py against the fakes."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import re
from decimal import Decimal
from pathlib import Path

from PIL import Image

from tests.e2e.discord_harness import CHAT_PATH, DiscordWorld, button, fences_balanced, has_button
from tests.fakes.discord_models import (
    INTENT_MESSAGE_CONTENT,
    MEMBER_PERMISSIONS,
    PRIVILEGED_INTENTS,
    DiscordLimits,
    FakeAttachment,
    SentMessage,
    attachment_payload,
)
from tests.fakes.minitoolai import PNG_BYTES, ChatScript

MANAGE_SERVER = MEMBER_PERMISSIONS | (1 << 5)


def mentions_off(message: SentMessage) -> bool:
    allowed = message.allowed_mentions or {}
    return (
        allowed.get("parse") == []
        and not allowed.get("users")
        and not allowed.get("roles")
        and not allowed.get("replied_user")
    )


async def test_login_identifies_and_syncs_the_commands_once(tmp_path: Path) -> None:
    """Login, IDENTIFY with the message content intent, one global sync; a restart with the same commands syncs nothing."""
    async with DiscordWorld.open(tmp_path) as world:
        async with world.bot():
            pass
        async with world.bot():
            pass
        dc = world.dc
        identifies = dc.gateway.identifies()
    assert 2 == len(identifies)
    assert identifies[0]["intents"] & INTENT_MESSAGE_CONTENT
    assert 1 == len(dc.command_syncs)
    assert dc.command_syncs[0].guild_id is None
    names = {c["name"] for c in dc.command_syncs[0].commands}
    assert {"chat", "imagine", "reset", "model", "system", "credits", "usage", "prices", "grant"} <= names
    grant = next(c for c in dc.command_syncs[0].commands if c["name"] == "grant")
    assert 1 << 5 == int(grant["default_member_permissions"])  # MANAGE_GUILD


async def test_mention_is_answered_without_any_ping(tmp_path: Path) -> None:
    """A mention gets a streamed reply sent with mentions off: model output naming @everyone, a role and a user pings nobody."""
    async with DiscordWorld.open(tmp_path) as world:
        dc, alice = world.dc, world.alice
        hostile = f"Hi @everyone and @here <@&{world.guild.bot_role_id}> <@{alice.id}>!"
        world.ai.chat_scripts.append(ChatScript(tokens=[hostile[:10], hostile[10:]]))
        async with world.bot():
            await dc.message_create(world.general, alice, f"<@{dc.bot_user.id}> hello there")
            answer = await world.finished_answer(world.general)
        sent = dc.bot_messages(world.general)
        writes = [r for r in dc.requests if f"/channels/{world.general.id}/messages" in r.path]
    assert hostile == answer.content
    # The final text and the Regenerate button came in one request: nothing after it.
    last = writes[-1]
    assert isinstance(last.body, dict) and hostile == last.body.get("content")
    assert "regen" in str(last.body.get("components"))
    assert all(not m.pings.anyone for m in sent)
    assert all(mentions_off(m) for m in sent)
    assert answer.message_reference is not None
    assert "hello there" in world.chat_requests()[0]["messages"][-1]["content"]
    assert f"<@{dc.bot_user.id}>" not in world.chat_requests()[0]["messages"][-1]["content"]


async def test_a_slow_first_token_shows_typing_then_the_answer(tmp_path: Path) -> None:
    """Nothing to show for a while: "typing…" comes (after a second, through the bot-wide gate
    like every channel write), then the answer's first message."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        typing_path = f"/channels/{world.general.id}/typing"
        release = asyncio.Event()
        world.ai.chat_scripts.append(ChatScript(tokens=["Worth ", "the wait."], wait_event=release))
        async with world.bot():
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> think hard")
            await world.wait(lambda: any(r.path == typing_path for r in dc.requests))
            release.set()
            answer = await world.finished_answer(world.general)
        paths = [r.path for r in dc.requests if r.method == "POST"]
    assert "Worth the wait." == answer.content
    assert paths.index(typing_path) < paths.index(f"/channels/{world.general.id}/messages")


async def test_sixty_channels_at_once_all_first_messages_precede_any_edit_and_no_429(tmp_path: Path) -> None:
    """Sixty channels mention the bot at the same moment, under Discord's real limits (50 requests
    a second per bot, 5 writes per 5 s per channel): every answer's first message goes before any
    answer's next write, nothing is refused, every final text arrives whole, nothing pings."""
    count = 60
    tokens = ["Answer ", "in ", "four ", "parts."]
    async with DiscordWorld.open(tmp_path, limits=DiscordLimits()) as world:
        dc = world.dc
        channels = [dc.text_channel(world.guild, f"c{i}") for i in range(count)]
        release = asyncio.Event()  # every stream starts together once every question is in
        world.ai.chat_scripts.extend(
            ChatScript(tokens=tokens, delay=0.3, wait_event=release) for _ in range(count)
        )
        async with world.bot():
            for i, channel in enumerate(channels):
                await dc.message_create(channel, dc.user(f"u{i}"), f"<@{dc.bot_user.id}> q{i}")
            await world.wait(lambda: len(world.chat_requests()) == count, timeout=30)
            release.set()
            await world.wait(
                lambda: (
                    all(has_button(m, "regen") for c in channels for m in dc.bot_messages(c)[:1])
                    and all(dc.bot_messages(c) for c in channels)
                ),
                timeout=60,
            )
        writes = [
            r
            for r in dc.requests
            if r.method in ("POST", "PATCH") and re.fullmatch(r"/channels/\d+/messages(/\d+)?", r.path)
        ]
    assert [] == dc.violations
    for channel in channels:
        (answer,) = dc.bot_messages(channel)
        assert "".join(tokens) == answer.content
        assert mentions_off(answer) and answer.message_reference is not None
    firsts = [i for i, r in enumerate(writes) if r.method == "POST"]
    assert count == len(firsts)
    assert max(firsts) < min(i for i, r in enumerate(writes) if r.method == "PATCH")


async def test_dev_guild_gets_the_commands(tmp_path: Path) -> None:
    """With DISCORD_DEV_GUILD_ID the commands are synced to that guild, at once."""
    async with DiscordWorld.open(tmp_path) as world, world.bot(discord_dev_guild_id=world.guild.id):
        pass
    assert [world.guild.id] == [s.guild_id for s in world.dc.command_syncs]


async def test_reply_to_the_bot_is_answered_with_the_conversation(tmp_path: Path) -> None:
    """Replying to one of the bot's messages (no mention) continues the same conversation."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.extend(
            [ChatScript(tokens=["First answer."]), ChatScript(tokens=["Second answer."])]
        )
        async with world.bot():
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> first")
            first = await world.finished_answer(world.general)
            await dc.message_create(world.general, world.alice, "and then?", reference=first)
            await world.wait(
                lambda: any(m.content == "Second answer." for m in dc.bot_messages(world.general))
            )
        second = world.chat_requests()[1]["messages"]
    assert ["user", "assistant", "user"] == [m["role"] for m in second][-3:]
    assert "First answer." == second[-2]["content"]


async def test_direct_messages_are_answered(tmp_path: Path) -> None:
    """A DM needs no mention and is answered in the DM."""
    async with DiscordWorld.open(tmp_path) as world:
        dm = world.dc.dm_channel(world.alice)
        world.ai.chat_scripts.append(ChatScript(tokens=["Hello in private."]))
        async with world.bot():
            await world.dc.message_create(dm, world.alice, "hi")
            answer = await world.finished_answer(dm)
    assert "Hello in private." == answer.content


async def test_a_thread_keeps_its_own_conversation(tmp_path: Path) -> None:
    """What was said in the channel is not in the thread's prompt, and the other way round."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        thread = dc.thread(world.general, "side talk", owner=world.alice)
        world.ai.chat_scripts.extend([ChatScript(tokens=["In channel."]), ChatScript(tokens=["In thread."])])
        async with world.bot():
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> channel secret")
            await world.finished_answer(world.general)
            await dc.message_create(thread, world.alice, f"<@{dc.bot_user.id}> thread question")
            answer = await world.finished_answer(thread)
        in_thread = world.chat_requests()[1]["messages"]
    assert "In thread." == answer.content
    assert not any("channel secret" in str(m["content"]) for m in in_thread)


async def test_chat_command_defers_then_streams_into_the_original_response(tmp_path: Path) -> None:
    """/chat is deferred, then a long answer streams into @original with several edits and no 429."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        words = [f"word{i} " for i in range(250)]
        world.ai.chat_scripts.append(ChatScript(tokens=words, delay=0.002))
        async with world.bot():
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "talk"}
            )
            await world.original_with(interaction, "regen")
        original = world.original(interaction)
    assert original is not None
    assert 5 == interaction.callback_type  # deferred
    assert "".join(words).strip() == original.content.strip()
    assert len(original.edits) >= 3  # streamed, not posted at the end
    assert [] == dc.violations
    assert mentions_off(original)
    # The final text and the Regenerate button arrive in one request.
    patches = [r for r in dc.requests if interaction.token in r.path and r.method == "PATCH"]
    assert "".join(words).strip() == patches[-1].body["content"].strip()
    assert "regen" in str(patches[-1].body.get("components"))
    # Paced by the budget Discord announces (5 per 0.2 s here), one request every 0.04 s counted
    # from each start: arrivals jitter by the latency, so the typical gap is checked (and no 429).
    calls = [r.at for r in dc.requests if interaction.token in r.path and "/webhooks/" in r.path]
    gaps = sorted(b - a for a, b in itertools.pairwise(calls))
    assert gaps[len(gaps) // 2] >= 0.95 * dc.limits.window / dc.limits.webhook_per_window


CALLBACK = r"/interactions/\d+/[^/]+/callback"


async def test_chat_asks_minitoolai_while_discord_is_still_answering_the_defer(tmp_path: Path) -> None:
    """The answer gets ready while the defer is on its way; its text waits for Discord's reply."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["Hel", "lo"]))
        slow_discord = dc.hold_next("POST", CALLBACK)
        async with world.bot():
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "hi"}
            )
            async with asyncio.timeout(5):
                await world.ai.wait_requests(CHAT_PATH, 1)
            assert interaction.callback_type is None  # Discord has not answered the defer yet
            slow_discord.set()
            await world.original_with(interaction, "regen")
        original = world.original(interaction)
    assert 5 == interaction.callback_type
    assert original is not None and "Hello" == original.content
    assert [] == dc.violations


async def test_a_defer_discord_refuses_leaves_the_answer_in_the_channel(tmp_path: Path) -> None:
    """The bot was too late (Discord's 3 seconds were over when the defer arrived): the answer,
    already under way, is posted in the channel rather than lost."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["Hel", "lo"]))
        slow_discord = dc.hold_next("POST", CALLBACK)
        async with world.bot():
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "hi"}
            )
            await world.wait(lambda: dc.holding)
            dc.age_interaction(interaction, 10)  # the defer now arrives too late
            slow_discord.set()
            answer = await world.finished_answer(world.general)
    assert interaction.callback_type is None
    assert "Hello" == answer.content
    assert mentions_off(answer)


async def test_a_refusal_while_the_defer_is_on_its_way_comes_after_it(tmp_path: Path) -> None:
    """No credit, and Discord slow to answer the defer: the refusal still arrives, privately."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        slow_discord = dc.hold_next("POST", CALLBACK)
        async with world.bot(starting_grant_usd=Decimal("0")):
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "hi"}
            )
            await world.wait(lambda: dc.holding)  # the defer has reached Discord, unanswered
            slow_discord.set()
            refusals = await world.wait(lambda: world.ephemerals(interaction))
            original = world.original(interaction)
    assert "credit" in refusals[0].content.lower() or "balance" in refusals[0].content.lower()
    assert original is not None and original.deleted
    assert [] == world.chat_requests()


async def test_an_answer_over_2000_characters_continues_in_followups_with_valid_fences(
    tmp_path: Path,
) -> None:
    """A 5000-character answer with a code block: @original plus follow-ups, each under 2000 characters with balanced fences."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        code = "".join(f"    line_{i} = compute({i})\n" for i in range(180))
        text = "Here is the code:\n\n```python\n" + code + "```\nDone."
        tokens = [text[i : i + 40] for i in range(0, len(text), 40)]
        world.ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.001))
        async with world.bot():
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "code"}
            )
            await world.original_with(interaction, "regen")
            await world.wait(lambda: "Done." in world.dc.bot_messages(world.general)[-1].content)
        parts = [m for m in dc.bot_messages(world.general) if m.interaction_token == interaction.token]
    assert len(parts) >= 3
    assert all(len(m.content) <= 2000 for m in parts)
    assert all(fences_balanced(m.content) for m in parts)
    assert all(not m.pings.anyone for m in parts)
    assert code.replace("\n", "") in "".join(m.content for m in parts).replace("```python", "").replace(
        "```", ""
    ).replace("\n", "")
    assert [] == dc.violations


async def test_after_the_interaction_window_the_answer_goes_to_the_channel(tmp_path: Path) -> None:
    """When the 15-minute token has expired, the answer is posted as a normal channel message."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        release = asyncio.Event()
        world.ai.chat_scripts.append(ChatScript(tokens=["Late ", "but ", "complete."], wait_event=release))
        async with world.bot():
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "slow"}
            )
            await world.wait(lambda: interaction.callback_type == 5)
            dc.age_interaction(interaction, 15 * 60 + 1)
            release.set()
            answer = await world.find(
                lambda: next(
                    (
                        m
                        for m in dc.bot_messages(world.general)
                        if m.interaction_token is None and has_button(m, "regen")
                    ),
                    None,
                )
            )
    assert "Late but complete." == answer.content
    assert mentions_off(answer)


async def test_stop_button_stops_the_answer(tmp_path: Path) -> None:
    """Clicking Stop while the answer streams ends it with a note, then Regenerate replaces the button."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["tick "] * 2000, delay=0.01))
        async with world.bot():
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "go"}
            )
            original = await world.original_with(interaction, "stop")
            await dc.component_click(original, world.alice, button(original, "stop"))
            await world.wait(lambda: has_button(original, "regen"))
            await world.ai.wait_cancelled()
    assert "Stopped" in original.content
    assert original.content.count("tick") < 2000


async def test_regenerate_button_works_after_a_restart(tmp_path: Path) -> None:
    """A Regenerate button from before a restart still answers the last message again."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.extend([ChatScript(tokens=["One."]), ChatScript(tokens=["Two."])])
        async with world.bot():
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> pick a number")
            first = await world.finished_answer(world.general)
        async with world.bot():
            click = await dc.component_click(first, world.alice, button(first, "regen"))
            again = await world.original_with(click, "regen")
        requests = world.chat_requests()
    assert "Two." == again.content
    assert requests[0]["messages"] == requests[1]["messages"]


async def test_someone_else_cannot_regenerate_an_answer(tmp_path: Path) -> None:
    """Regenerate by another member is refused with an ephemeral reply; nothing is asked upstream."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["Mine."]))
        async with world.bot():
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> hi")
            first = await world.finished_answer(world.general)
            click = await dc.component_click(first, world.bob, button(first, "regen"))
            refusals = await world.wait(lambda: world.ephemerals(click))
    assert "Only the person who asked" in refusals[0].content
    assert 1 == len(world.chat_requests())


async def test_without_the_message_content_intent_mentions_dms_and_slash_commands_work(
    tmp_path: Path,
) -> None:
    """Intent not approved and not asked for: mentions, DMs and /chat are answered; other messages are ignored."""
    async with DiscordWorld.open(
        tmp_path, approved_intents=PRIVILEGED_INTENTS & ~INTENT_MESSAGE_CONTENT
    ) as world:
        dc = world.dc
        dm = dc.dm_channel(world.bob)
        for text in ("Via mention.", "Via DM.", "Via slash."):
            world.ai.chat_scripts.append(ChatScript(tokens=[text]))
        async with world.bot(discord_message_content=False):
            await dc.message_create(world.general, world.alice, "nobody asked you")
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> mention")
            await world.finished_answer(world.general)
            await dc.message_create(dm, world.bob, "dm")
            await world.finished_answer(dm)
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "slash"}
            )
            await world.original_with(interaction, "regen")
        identifies = dc.gateway.identifies()
        prompts = [r["messages"][-1]["content"] for r in world.chat_requests()]
    assert not identifies[0]["intents"] & INTENT_MESSAGE_CONTENT
    assert 3 == len(prompts)
    assert ["mention", "dm", "slash"] == [p.rsplit("] ", 1)[-1] for p in prompts]


async def test_an_unapproved_message_content_intent_falls_back_without_it(tmp_path: Path) -> None:
    """Asking for the intent when the portal has not enabled it (close 4014): the bot reconnects without it and works."""
    async with DiscordWorld.open(tmp_path, approved_intents=0) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["Still here."]))
        async with world.bot(discord_message_content=True):
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> hello")
            answer = await world.finished_answer(world.general)
        identifies = dc.gateway.identifies()
    assert "Still here." == answer.content
    assert [True, False] == [bool(i["intents"] & INTENT_MESSAGE_CONTENT) for i in identifies]


async def test_image_attached_to_chat_reaches_the_model_as_a_data_url(tmp_path: Path) -> None:
    """/chat with an image option: the picture is downloaded and sent as a data: URL."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        scratch = dc.text_channel(world.guild, "uploads")
        world.ai.chat_scripts.append(ChatScript(tokens=["A red square."]))
        async with world.bot():
            upload = await dc.message_create(
                scratch, world.alice, "", attachments=[FakeAttachment("red.png", PNG_BYTES, "image/png")]
            )
            stored = upload.attachments[0]
            options = [
                {"name": "prompt", "type": 3, "value": "What is it?"},
                {"name": "image", "type": 11, "value": str(stored.id)},
            ]
            resolved = {"attachments": {str(stored.id): attachment_payload(stored, scratch.id, dc.base_url)}}
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", options, resolved=resolved
            )
            await world.original_with(interaction, "regen")
        content = world.chat_requests()[0]["messages"][-1]["content"]
    urls = [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
    assert 1 == len(urls)
    assert urls[0].startswith("data:image/png;base64,")
    sent_bytes = base64.b64decode(urls[0].partition(",")[2])
    with Image.open(io.BytesIO(sent_bytes)) as sent, Image.open(io.BytesIO(PNG_BYTES)) as original:
        assert original.size == sent.size
        assert original.convert("RGB").tobytes() == sent.convert("RGB").tobytes()


async def test_image_attached_to_a_mention_reaches_the_model(tmp_path: Path) -> None:
    """A picture on a message that mentions the bot is sent to the model too."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["Nice picture."]))
        async with world.bot():
            await dc.message_create(
                world.general,
                world.alice,
                f"<@{dc.bot_user.id}> look",
                attachments=[FakeAttachment("red.png", PNG_BYTES, "image/png")],
            )
            await world.finished_answer(world.general)
        content = world.chat_requests()[0]["messages"][-1]["content"]
    assert any(part.get("type") == "image_url" for part in content)


async def test_no_credit_gets_an_ephemeral_reply_and_nothing_upstream(tmp_path: Path) -> None:
    """With an empty balance /chat is refused privately; the thinking placeholder goes away."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(starting_grant_usd=Decimal("0")):
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "hi"}
            )
            refusals = await world.wait(lambda: world.ephemerals(interaction))
            original = world.original(interaction)
    assert "credit" in refusals[0].content.lower() or "balance" in refusals[0].content.lower()
    assert original is not None and original.deleted
    assert [] == world.chat_requests()


async def test_unknown_model_gets_an_ephemeral_reply_and_nothing_upstream(tmp_path: Path) -> None:
    """/chat with a model that does not exist, and /model with one: both refused privately."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot():
            chat = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "hi", "model": "gpt-9"}
            )
            model = await dc.slash_command(
                world.guild, world.general, world.alice, "model", {"name": "gpt-9"}
            )
            chat_refusals = await world.wait(lambda: world.ephemerals(chat))
            model_refusals = await world.wait(lambda: world.ephemerals(model))
    assert "gpt-9" in chat_refusals[0].content
    assert "gpt-9" in model_refusals[0].content
    assert [] == world.chat_requests()


async def test_text_commands_answer_and_credits_are_private(tmp_path: Path) -> None:
    """/credits answers ephemerally; /prices publicly; /reset forgets."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot():
            credits = await dc.slash_command(world.guild, world.general, world.alice, "credits")
            prices = await dc.slash_command(world.guild, world.general, world.alice, "prices")
            await world.wait(lambda: world.ephemerals(credits) and world.original(prices))
        public = world.original(prices)
    assert "balance" in world.ephemerals(credits)[0].content.lower()
    assert public is not None and not public.ephemeral and public.content


async def test_admin_grant_needs_manage_server(tmp_path: Path) -> None:
    """/grant by a plain member is refused privately; the same from a Manage Server member is trusted only if the owner allows."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot():
            member = await dc.slash_command(
                world.guild, world.general, world.alice, "grant", {"user": str(world.bob.id), "amount": "5"}
            )
            refusals = await world.wait(lambda: world.ephemerals(member))
    assert "admin" in refusals[0].content.lower() or "owner" in refusals[0].content.lower()


async def test_auto_thread_opens_a_thread_per_conversation(tmp_path: Path) -> None:
    """With /autothread on, a mention opens a thread named after it; the thread's next message needs no mention."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.extend(
            [ChatScript(tokens=["Thread answer."]), ChatScript(tokens=["Follow-up."])]
        )
        async with world.bot():
            toggle = await dc.slash_command(
                world.guild,
                world.general,
                world.alice,
                "autothread",
                {"enabled": True},
                permissions=MANAGE_SERVER,
            )
            await world.wait(lambda: world.original(toggle))
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> plan a trip")
            thread = await world.find(
                lambda: next((t for t in world.guild.threads if t.parent_id == world.general.id), None)
            )
            await world.finished_answer(thread)
            await dc.message_create(thread, world.alice, "and the budget?")
            await world.wait(lambda: any(m.content == "Follow-up." for m in dc.bot_messages(thread)))
        second = world.chat_requests()[1]["messages"]
    assert "plan a trip" == thread.name
    assert [] == [m for m in dc.bot_messages(world.general) if not m.interaction_token]
    assert "Thread answer." == second[-2]["content"]


async def test_sharded_client_serves_its_shards(tmp_path: Path) -> None:
    """DISCORD_SHARD_IDS / DISCORD_SHARD_COUNT run an AutoShardedClient that identifies with its shard."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["Sharded."]))
        async with world.bot(discord_shard_ids="0", discord_shard_count=1):
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> hi")
            answer = await world.finished_answer(world.general)
        identify = dc.gateway.identifies()[0]
    assert "Sharded." == answer.content
    assert [0, 1] == identify["shard"]


async def test_stopping_the_bot_mid_answer_finishes_the_message_and_records_it(tmp_path: Path) -> None:
    """Shutdown while an answer streams: the message is finished with a note, and the next start remembers it."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.extend(
            [ChatScript(tokens=["part "] * 5000, delay=0.01), ChatScript(tokens=["Ok."])]
        )
        async with world.bot():
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", {"prompt": "long"}
            )
            original = await world.original_with(interaction, "stop")
        interrupted = original.content
        async with world.bot():
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> again")
            await world.wait(lambda: any(m.content == "Ok." for m in dc.bot_messages(world.general)))
        remembered = world.chat_requests()[1]["messages"]
    assert "restart" in interrupted
    assert has_button(original, "regen")
    assert remembered[-2]["role"] == "assistant" and remembered[-2]["content"].startswith("part")
