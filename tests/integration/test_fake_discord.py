"""The fake Discord in `tests.fakes.discord`, driven by the real discord.py 2.7 client.

If discord.py logs in, connects, caches the guild, receives messages and interactions, and
handles the fake's limits the way it handles Discord's, the fake is faithful enough for the
adapter's tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import aiohttp
import pytest
import yarl

with warnings.catch_warnings():
    # discord.player imports the stdlib audioop, deprecated since 3.11 (no voice used here).
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord import app_commands

from tests.fakes.discord import DiscordLimits, FakeAttachment, FakeDiscord
from tests.fakes.discord_models import FLAG_EPHEMERAL, FLAG_LOADING, FakeChannel, FakeGuild

T = TypeVar("T")
AskHandler = Callable[[discord.Interaction, str], Awaitable[None]]


class ProbeView(discord.ui.View):
    """One button; each click edits the message and reports who clicked."""

    def __init__(self, clicks: asyncio.Queue[int]) -> None:
        super().__init__(timeout=None)
        self.clicks = clicks

    @discord.ui.button(label="OK", custom_id="probe:ok")
    async def ok(self, interaction: discord.Interaction, button: discord.ui.Button[ProbeView]) -> None:
        await interaction.response.edit_message(content="clicked", view=None)
        self.clicks.put_nowait(interaction.user.id)


class ProbeBot(discord.Client):
    """A small bot on the real discord.py that records what reaches it."""

    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        # A short guild_ready_timeout: discord.py waits this long after the last
        # GUILD_CREATE before on_ready (2 s by default).
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready = asyncio.Event()
        self.gate = asyncio.Event()
        self.seen: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.own: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.outcomes: asyncio.Queue[BaseException | None] = asyncio.Queue()
        self.ask_handler: AskHandler = self._defer_only
        self._add_commands()

    def _add_commands(self) -> None:
        @self.tree.command(name="ask", description="Ask the model something")
        async def ask(interaction: discord.Interaction, prompt: str) -> None:
            try:
                await self.ask_handler(interaction, prompt)
            except Exception as exc:  # reported to the test, which asserts on it
                self.outcomes.put_nowait(exc)
            else:
                self.outcomes.put_nowait(None)

    @staticmethod
    async def _defer_only(interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.defer()

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_message(self, message: discord.Message) -> None:
        if message.author == self.user:
            self.own.put_nowait(message)
            return
        self.seen.put_nowait(message)
        if message.content.startswith("!echo"):
            await message.reply(
                f"echo: {message.content} <@{message.author.id}>",
                allowed_mentions=discord.AllowedMentions.none(),
            )


@dataclasses.dataclass(frozen=True, slots=True)
class World:
    dc: FakeDiscord
    guild: FakeGuild
    general: FakeChannel


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with FakeDiscord(limits=DiscordLimits.fast()) as dc:
        guild = dc.guild("Test Guild")
        general = dc.text_channel(guild, "general")
        with pointed_at(dc):
            yield World(dc, guild, general)


@pytest.fixture
def dc(world: World) -> FakeDiscord:
    return world.dc


@contextmanager
def pointed_at(dc: FakeDiscord) -> Iterator[None]:
    """What the bot does with DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL; restored after."""
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = dc.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(dc.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@asynccontextmanager
async def running(bot: ProbeBot, dc: FakeDiscord) -> AsyncIterator[ProbeBot]:
    """Start the bot with `client.start`, wait for on_ready, close it cleanly afterwards."""
    task = asyncio.create_task(bot.start(dc.token))
    ready = asyncio.create_task(bot.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    try:
        if task in done:
            task.result()
        assert ready in done, "on_ready did not fire"
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        async with asyncio.timeout(5):
            await task


async def next_item(queue: asyncio.Queue[T]) -> T:
    async with asyncio.timeout(5):
        return await queue.get()


def text_channel(bot: discord.Client, channel: FakeChannel) -> discord.TextChannel:
    found = bot.get_channel(channel.id)
    assert isinstance(found, discord.TextChannel)
    return found


# --------------------------------------------------------------------------- connecting


async def test_login_and_connect_fire_on_ready_with_guild_and_channel_cached(world: World) -> None:
    """discord.py logs in, identifies with zlib-stream, and caches what GUILD_CREATE carried."""
    dc = world.dc
    async with running(ProbeBot(), dc) as bot:
        assert bot.user is not None and bot.user.id == dc.bot_user.id
        assert bot.application_id == dc.application_id
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.me is not None
        assert text_channel(bot, world.general).name == "general"
        (identify,) = dc.gateway.identifies()
        assert identify["token"] == dc.token
        assert identify["intents"] == bot.intents.value
        assert dc.gateway.connections[0].query["compress"] == "zlib-stream"
        paths = [r.path for r in dc.requests]
        assert paths[:2] == ["/users/@me", "/oauth2/applications/@me"]


async def test_close_ends_start_and_the_client_closes_the_socket(world: World) -> None:
    """`await client.close()` makes `start()` return and closes the gateway socket."""
    dc = world.dc
    async with running(ProbeBot(), dc) as bot:
        pass
    assert bot.is_closed()
    connection = dc.gateway.connections[0]
    await dc.wait_for(lambda: connection.close_code is not None)
    # discord.py asks for 1000, but its reader task answers the close first with 4000
    # (aiohttp hands the pending receive a CLOSING message); either is the client's own close.
    assert connection.close_code in (1000, 4000)
    assert connection.server_close_code is None
    assert dc.gateway.live_connections() == []


async def test_wrong_token_fails_login(world: World) -> None:
    """A token the fake does not know is refused with 401, which discord.py calls LoginFailure."""
    bot = ProbeBot()
    async with bot:
        with pytest.raises(discord.LoginFailure):
            await bot.login("not-the-token")


async def test_unapproved_privileged_intent_raises_privileged_intents_required(world: World) -> None:
    """IDENTIFY with MESSAGE_CONTENT when it is not approved closes with 4014."""
    world.dc.approved_intents = 0
    bot = ProbeBot(message_content=True)
    async with bot:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await bot.start(world.dc.token)
    assert world.dc.gateway.connections[0].server_close_code == 4014


async def test_dropped_gateway_resumes_and_events_keep_arriving(world: World) -> None:
    """After the fake closes the socket with 4000, discord.py RESUMEs and still gets messages."""
    dc = world.dc
    alice = dc.user("alice")
    async with running(ProbeBot(), dc) as bot:
        await dc.drop_gateway(4000)
        await dc.wait_for(lambda: any(s.resumes for s in dc.gateway.sessions.values()))
        await dc.message_create(world.general, alice, "after the drop")
        message = await next_item(bot.seen)
    assert message.content == "after the drop"
    assert len(dc.gateway.sessions) == 1


# --------------------------------------------------------------------------- messages


async def test_message_create_reaches_on_message_and_the_reply_pings_nobody(world: World) -> None:
    """A user's message reaches on_message; the reply is recorded with mentions disabled."""
    dc = world.dc
    alice = dc.user("alice")
    async with running(ProbeBot(), dc) as bot:
        sent = await dc.message_create(world.general, alice, "!echo hi @everyone")
        received = await next_item(bot.seen)
        reply = await dc.wait_for(lambda: dc.bot_messages(world.general))
    assert received.id == sent.id and received.content == "!echo hi @everyone"
    assert isinstance(received.author, discord.Member)
    (message,) = reply
    assert message.content == f"echo: !echo hi @everyone <@{alice.id}>"
    assert message.allowed_mentions == discord.AllowedMentions.none().to_dict()
    assert not message.pings.anyone
    assert message.message_reference is not None
    assert message.message_reference["message_id"] == str(sent.id)


async def test_the_bots_own_messages_come_back_as_message_create(world: World) -> None:
    """Like Discord, the fake echoes what the bot sends, so handlers must ignore themselves."""
    async with running(ProbeBot(), world.dc) as bot:
        sent = await text_channel(bot, world.general).send("hello")
        echoed = await next_item(bot.own)
    assert echoed.id == sent.id


async def test_without_the_content_intent_guild_messages_arrive_blank_unless_mentioned(
    world: World,
) -> None:
    """MESSAGE_CONTENT off: content is empty, except in messages that mention the bot."""
    dc = world.dc
    alice = dc.user("alice")
    async with running(ProbeBot(message_content=False), dc) as bot:
        await dc.message_create(world.general, alice, "secret")
        blank = await next_item(bot.seen)
        await dc.message_create(world.general, alice, f"<@{dc.bot_user.id}> hello")
        mentioned = await next_item(bot.seen)
    assert blank.content == ""
    assert mentioned.content == f"<@{dc.bot_user.id}> hello"
    assert bot.user in mentioned.mentions


async def test_direct_message_keeps_its_content_and_the_bot_answers_in_the_dm(world: World) -> None:
    """DMs carry content even without the intent; the reply goes to the DM channel."""
    dc = world.dc
    alice = dc.user("alice")
    dm = dc.dm_channel(alice)
    async with running(ProbeBot(message_content=False), dc) as bot:
        await dc.message_create(dm, alice, "!echo private")
        received = await next_item(bot.seen)
        replies = await dc.wait_for(lambda: dc.bot_messages(dm))
    assert isinstance(received.channel, discord.DMChannel)
    assert received.content == "!echo private"
    assert replies[0].content == f"echo: !echo private <@{alice.id}>"


async def test_message_over_2000_characters_is_refused_with_50035(world: World) -> None:
    """Content over the limit raises discord.HTTPException(400, code 50035)."""
    async with running(ProbeBot(), world.dc) as bot:
        with pytest.raises(discord.HTTPException) as refused:
            await text_channel(bot, world.general).send("x" * 2001)
        await text_channel(bot, world.general).send("x" * 2000)
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert [len(m.content) for m in world.dc.bot_messages()] == [2000]


async def test_embed_description_over_4096_is_refused(world: World) -> None:
    """Embed limits are enforced like content limits."""
    async with running(ProbeBot(), world.dc) as bot:
        with pytest.raises(discord.HTTPException) as refused:
            embed = discord.Embed(description="d" * 4097)
            await text_channel(bot, world.general).send(embed=embed)
    assert refused.value.code == 50035


async def test_file_upload_is_stored_with_its_bytes(world: World) -> None:
    """A multipart upload keeps name and bytes, and discord.py can read it back."""
    data = b"\x89PNG fake image bytes"
    async with running(ProbeBot(), world.dc) as bot:
        sent = await text_channel(bot, world.general).send(
            "picture", file=discord.File(io.BytesIO(data), "cat.png")
        )
        downloaded = await sent.attachments[0].read()
    (stored,) = world.dc.bot_messages()
    assert [(a.filename, a.data) for a in stored.attachments] == [("cat.png", data)]
    assert stored.attachments[0].content_type == "image/png"
    assert downloaded == data


async def test_upload_over_the_limit_is_refused_with_413(world: World) -> None:
    """Files over the configured upload limit get Discord's 413."""
    dc = world.dc
    dc.limits = dataclasses.replace(dc.limits, upload_limit=1024)
    async with running(ProbeBot(), dc) as bot:
        with pytest.raises(discord.HTTPException) as refused:
            big = discord.File(io.BytesIO(b"x" * 1025), "big.bin")
            await text_channel(bot, world.general).send(file=big)
    assert refused.value.status == 413


async def test_users_attachment_can_be_downloaded_by_discord_py(world: World) -> None:
    """An injected attachment is served by the fake at its CDN-like URL."""
    dc = world.dc
    alice = dc.user("alice")
    async with running(ProbeBot(), dc) as bot:
        await dc.message_create(
            world.general, alice, "look", attachments=[FakeAttachment("a.txt", b"abc", "text/plain")]
        )
        received = await next_item(bot.seen)
        data = await received.attachments[0].read()
    assert (received.attachments[0].filename, data) == ("a.txt", b"abc")


async def test_thread_from_a_message_gets_the_message_id(world: World) -> None:
    """create_thread on a message answers a thread whose id is the message's."""
    async with running(ProbeBot(), world.dc) as bot:
        sent = await text_channel(bot, world.general).send("start")
        thread = await sent.create_thread(name="talk")
        await thread.send("inside")
    assert thread.id == sent.id
    assert [m.content for m in world.dc.bot_messages()] == ["start", "inside"]
    assert world.dc.bot_messages()[1].channel_id == sent.id


# --------------------------------------------------------------------------- rate limits


async def test_raw_burst_over_the_channel_bucket_gets_429_with_via(world: World) -> None:
    """The sixth create inside one window is refused the way discord.py expects a 429."""
    dc = world.dc
    url = f"{dc.api_base}/channels/{world.general.id}/messages"
    headers = {"Authorization": f"Bot {dc.token}"}
    async with aiohttp.ClientSession() as session:
        statuses = []
        for index in range(6):
            async with session.post(url, json={"content": str(index)}, headers=headers) as resp:
                statuses.append(resp.status)
                last = (resp.headers.copy(), await resp.json())
    assert statuses == [200] * 5 + [429]
    response_headers, body = last
    assert response_headers["Content-Type"] == "application/json"
    assert response_headers["Via"] == "1.1 google"
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= dc.limits.window
    assert [v.bucket for v in dc.violations] == ["message.create"]


async def test_requests_over_the_global_limit_get_a_global_429() -> None:
    """Requests to different channels still share the bot-wide limit."""
    async with FakeDiscord(limits=DiscordLimits.fast(global_per_window=3)) as dc:
        guild = dc.guild()
        channels = [dc.text_channel(guild, f"c{i}") for i in range(4)]
        headers = {"Authorization": f"Bot {dc.token}"}
        statuses, last = [], None
        async with aiohttp.ClientSession() as session:
            for channel in channels:
                url = f"{dc.api_base}/channels/{channel.id}/messages"
                async with session.post(url, json={"content": "x"}, headers=headers) as resp:
                    statuses.append(resp.status)
                    last = (resp.headers.copy(), await resp.json())
    assert statuses == [200, 200, 200, 429]
    assert last is not None
    assert last[0]["X-RateLimit-Global"] == "true" and last[1]["global"] is True
    assert [v.is_global for v in dc.violations] == [True]


async def test_discord_py_paces_a_burst_of_sends_without_429s(world: World) -> None:
    """Twelve concurrent sends to one channel: discord.py sleeps on the headers, no violations."""
    async with running(ProbeBot(), world.dc) as bot:
        channel = text_channel(bot, world.general)
        await asyncio.gather(*(channel.send(f"m{i}") for i in range(12)))
    assert world.dc.violations == []
    assert sorted(m.content for m in world.dc.bot_messages()) == sorted(f"m{i}" for i in range(12))


async def test_twelve_rapid_edits_of_a_channel_message_stay_under_the_limit(world: World) -> None:
    """message.edit in a loop: discord.py's bucket handling keeps the edit bucket whole."""
    async with running(ProbeBot(), world.dc) as bot:
        sent = await text_channel(bot, world.general).send("0")
        for index in range(1, 13):
            sent = await sent.edit(content=str(index))
    assert world.dc.violations == []
    edited = world.dc.message(sent.id)
    assert edited.content == "12" and [v.content for v in edited.edits] == [str(i) for i in range(12)]
    patches = [r for r in world.dc.requests if r.method == "PATCH"]
    assert any(r.headers["X-RateLimit-Remaining"] == "0" for r in patches)


async def test_injected_429_with_via_is_waited_out_and_retried(world: World) -> None:
    """discord.py sleeps retry_after and sends again; the message arrives once."""
    dc = world.dc
    dc.fail_next("POST", r"/channels/\d+/messages", status=429, retry_after=0.05)
    async with running(ProbeBot(), dc) as bot:
        await text_channel(bot, world.general).send("after a 429")
    statuses = [r.status for r in dc.requests if r.method == "POST" and "/messages" in r.path]
    assert statuses == [429, 200]
    assert [m.content for m in dc.bot_messages()] == ["after a 429"]
    assert len(dc.injected) == 1 and dc.violations == []


async def test_429_without_via_is_a_ban_discord_py_does_not_retry(world: World) -> None:
    """Without `Via` discord.py treats a 429 as a Cloudflare ban and raises at once."""
    dc = world.dc
    dc.fail_next("POST", r"/channels/\d+/messages", status=429, via=False)
    async with running(ProbeBot(), dc) as bot:
        with pytest.raises(discord.HTTPException) as refused:
            await text_channel(bot, world.general).send("banned")
    assert refused.value.status == 429
    assert dc.bot_messages() == []


# --------------------------------------------------------------------------- interactions


async def test_slash_command_deferred_then_edited_twelve_times_stays_under_the_limit(
    world: World,
) -> None:
    """defer() then 12 rapid edit_original_response: no 429, and the bucket was really hit."""
    dc = world.dc
    alice = dc.user("alice")

    async def ask(interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.defer()
        for index in range(12):
            await interaction.edit_original_response(content=f"{prompt} {index}")

    async with running(ProbeBot(), dc) as bot:
        bot.ask_handler = ask
        fake = await dc.slash_command(world.guild, world.general, alice, "ask", {"prompt": "p"})
        assert await next_item(bot.outcomes) is None
    assert dc.violations == []
    assert fake.callback_type == 5
    original = dc.message(fake.original_message_id or 0)
    assert original.content == "p 11" and len(original.edits) == 12
    assert original.edits[0].flags & FLAG_LOADING and not original.flags & FLAG_LOADING
    edits = [r for r in dc.requests if r.method == "PATCH" and r.path.endswith("@original")]
    assert any(r.headers["X-RateLimit-Remaining"] == "0" for r in edits)


async def test_callback_answers_with_response_json(world: World) -> None:
    """send_message gets Discord's InteractionCallbackResponse and the message is recorded."""
    dc = world.dc
    alice = dc.user("alice")
    responses: list[discord.InteractionCallbackResponse[discord.Client]] = []

    async def ask(interaction: discord.Interaction, prompt: str) -> None:
        responses.append(await interaction.response.send_message(f"you said {prompt}"))

    async with running(ProbeBot(), dc) as bot:
        bot.ask_handler = ask
        fake = await dc.slash_command(world.guild, world.general, alice, "ask", {"prompt": "hi"})
        assert await next_item(bot.outcomes) is None
    (response,) = responses
    assert response.id == fake.id and response.message_id == fake.original_message_id
    assert isinstance(response.resource, discord.InteractionMessage)
    assert dc.message(response.message_id or 0).content == "you said hi"
    callback = next(r for r in dc.requests if r.path.endswith("/callback"))
    assert callback.query == {"with_response": "1"} and callback.status == 200


async def test_ephemeral_followup_is_flagged_and_not_echoed(world: World) -> None:
    """followup.send(ephemeral=True) stores flag 64 and sends no MESSAGE_CREATE."""
    dc = world.dc
    alice = dc.user("alice")

    async def ask(interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.followup.send("only you", ephemeral=True)

    async with running(ProbeBot(), dc) as bot:
        bot.ask_handler = ask
        await dc.slash_command(world.guild, world.general, alice, "ask", {"prompt": "x"})
        assert await next_item(bot.outcomes) is None
        assert bot.own.empty()
    followup = dc.bot_messages()[-1]
    assert followup.content == "only you" and followup.flags & FLAG_EPHEMERAL


async def test_callback_after_the_deadline_is_unknown_interaction(world: World) -> None:
    """A defer later than the callback deadline gets 404 Unknown interaction (10062)."""
    dc = world.dc
    alice = dc.user("alice")

    async def ask(interaction: discord.Interaction, prompt: str) -> None:
        await bot.gate.wait()
        await interaction.response.defer()

    async with running(ProbeBot(), dc) as bot:
        bot.ask_handler = ask
        fake = await dc.slash_command(world.guild, world.general, alice, "ask", {"prompt": "x"})
        dc.age_interaction(fake, dc.limits.callback_deadline + 0.1)
        bot.gate.set()
        outcome = await next_item(bot.outcomes)
    assert isinstance(outcome, discord.NotFound) and outcome.code == 10062


async def test_edit_after_the_token_expired_is_invalid_webhook_token(world: World) -> None:
    """Fifteen minutes after the interaction its token is refused (401, code 50027)."""
    dc = world.dc
    alice = dc.user("alice")

    async def ask(interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.defer()
        await bot.gate.wait()
        await interaction.edit_original_response(content="too late")

    async with running(ProbeBot(), dc) as bot:
        bot.ask_handler = ask
        fake = await dc.slash_command(world.guild, world.general, alice, "ask", {"prompt": "x"})
        await dc.wait_for(lambda: fake.callback_type is not None)
        dc.age_interaction(fake, dc.limits.token_ttl + 1)
        bot.gate.set()
        outcome = await next_item(bot.outcomes)
    assert isinstance(outcome, discord.HTTPException)
    assert (outcome.status, outcome.code) == (401, 50027)


async def test_tree_sync_puts_commands_and_keeps_their_ids(world: World) -> None:
    """CommandTree.sync PUTs the commands; a second sync keeps ids; the fake counts PUTs."""
    dc = world.dc
    async with running(ProbeBot(), dc) as bot:
        first = await bot.tree.sync()
        second = await bot.tree.sync()
        guild_synced = await bot.tree.sync(guild=discord.Object(world.guild.id))
    assert [c.name for c in first] == ["ask"]
    assert [c.id for c in first] == [c.id for c in second]
    assert guild_synced == []
    assert [s.guild_id for s in dc.command_syncs] == [None, None, world.guild.id]
    (stored,) = dc.commands[None]
    assert stored["options"][0]["name"] == "prompt"


async def test_button_click_reaches_the_view_and_updates_the_message(world: World) -> None:
    """A component interaction (type 3) is routed to the view; edit_message updates it."""
    dc = world.dc
    alice = dc.user("alice")
    clicks: asyncio.Queue[int] = asyncio.Queue()
    async with running(ProbeBot(), dc) as bot:
        sent = await text_channel(bot, world.general).send("press", view=ProbeView(clicks))
        fake = await dc.component_click(dc.message(sent.id), alice, "probe:ok")
        clicker = await next_item(clicks)
    assert clicker == alice.id
    assert fake.callback_type == 7
    message = dc.message(sent.id)
    assert (message.content, message.components) == ("clicked", [])
