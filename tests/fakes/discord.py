"""A fake Discord for tests: REST under `/api/v10` and a gateway WebSocket, on 127.0.0.1.

The real discord.py 2.7 client runs against it unchanged. To point discord.py here, the bot
applies its settings before creating the client (nothing in the fake does this for it):

    discord.http.Route.BASE = settings.DISCORD_API_BASE_URL          # dc.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.DISCORD_GATEWAY_URL)
                                                                     # dc.gateway_url

`Client.connect` in 2.7.1 connects straight to `DEFAULT_GATEWAY` (only AutoShardedClient asks
`GET /gateway/bot`, which answers `dc.gateway_url` too); READY's `resume_gateway_url` is the
same URL. Both values are class attributes, so tests set them and restore them afterwards.

Faithful where discord.py and the bot can tell: JSON with content type exactly
`application/json`, `X-RateLimit-*` headers on every answer, 429s with `Via` and a JSON body,
per-channel message buckets and a global limit (`DiscordLimits`), the 2000-character and embed
limits (400, code 50035), uploads over the limit (413), the 3-second callback deadline and the
15-minute interaction token (`age_interaction` moves an interaction back in time), privileged
intents (close 4014), blank message content without the MESSAGE_CONTENT intent, and the bot's
own messages echoed back as MESSAGE_CREATE.

    async with FakeDiscord(limits=DiscordLimits.fast()) as dc:
        guild = dc.guild("Test")
        general = dc.text_channel(guild, "general")
        alice = dc.user("alice")
        ...  # start discord.py, then:
        await dc.message_create(general, alice, "hello")
        reply = await dc.wait_for(lambda: dc.bot_messages(general))
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import hdrs, web

from tests.fakes.discord_gateway import FakeGateway, application_flags
from tests.fakes.discord_http import (
    Body,
    Fault,
    RateLimiter,
    Reply,
    RouteSpec,
    TooManyRequests,
    Upload,
    json_response,
    read_body,
    reply_response,
    too_many_response,
)
from tests.fakes.discord_models import (
    BOT_PERMISSIONS,
    DM,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    GUILD_TEXT,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    JSON,
    MEMBER_PERMISSIONS,
    PRIVATE_THREAD,
    PRIVILEGED_INTENTS,
    PUBLIC_THREAD,
    CommandSync,
    DiscordError,
    DiscordLimits,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeUser,
    RecordedRequest,
    SentMessage,
    SnowflakeFactory,
    StoredAttachment,
    Violation,
    channel_payload,
    form_error,
    iso_now,
    max_length_error,
    member_payload,
    message_payload,
    user_payload,
    validate_message,
)

__all__ = [
    "DiscordLimits",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeUser",
    "SentMessage",
]

T = TypeVar("T")
API_PREFIX = "/api/v10"
_USER_MENTION = re.compile(r"<@!?(\d+)>")
Handler = Callable[[web.Request, Body], Awaitable[Reply]]


class FakeDiscord:
    """A Discord stand-in on 127.0.0.1; see the module docstring for how to point at it."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "MiniToolAI",
        limits: DiscordLimits | None = None,
        approved_intents: int = PRIVILEGED_INTENTS,
        echo_own_messages: bool = True,
    ) -> None:
        self.token = token
        self._limiter = RateLimiter(limits or DiscordLimits())
        self._holds: list[tuple[str, re.Pattern[str], asyncio.Event]] = []
        self.holding: list[str] = []  # paths of the requests held right now (hold_next)
        self.approved_intents = approved_intents
        self.echo_own_messages = echo_own_messages
        self._ids = SnowflakeFactory()
        self.application_id = self._ids.next()
        self.bot_user = FakeUser(self.application_id, bot_name, bot=True)
        self.owner_user = FakeUser(self._ids.next(), "owner")
        self.users: dict[int, FakeUser] = {u.id: u for u in (self.bot_user, self.owner_user)}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: list[SentMessage] = []
        self.interactions: list[FakeInteraction] = []
        self.requests: list[RecordedRequest] = []
        self.injected: list[RecordedRequest] = []
        self.command_syncs: list[CommandSync] = []
        self.commands: dict[int | None, list[JSON]] = {}
        self.gateway = FakeGateway(self)
        self._messages_by_id: dict[int, SentMessage] = {}
        self._files: dict[int, StoredAttachment] = {}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        # Room for a request over the upload limit, so the fake answers Discord's 413 itself.
        app = web.Application(client_max_size=self.limits.request_limit * 2)
        self._add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.gateway.drop_all(1001)
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def limits(self) -> DiscordLimits:
        return self._limiter.limits

    @limits.setter
    def limits(self, limits: DiscordLimits) -> None:
        """Change limits mid-test (e.g. a smaller upload limit); buckets keep their counts."""
        self._limiter.limits = limits

    @property
    def violations(self) -> list[Violation]:
        """Every request the fake refused with a 429 of its own (injected faults excluded)."""
        return self._limiter.violations

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    # ------------------------------------------------------------------ waiting

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109 -- same call shape as the other fakes
        """Wait until `predicate()` is truthy, re-checking after every recorded change."""
        async with asyncio.timeout(timeout), self._changed:
            while not (result := predicate()):
                await self._changed.wait()
            return result

    # ------------------------------------------------------------------ world building

    def user(self, name: str, *, bot: bool = False) -> FakeUser:
        user = FakeUser(self._ids.next(), name, bot=bot)
        self.users[user.id] = user
        return user

    def guild(
        self, name: str = "Test Guild", *, owner: FakeUser | None = None, guild_id: int | None = None
    ) -> FakeGuild:
        """A guild the bot is in; create guilds and channels before discord.py connects.
        ``guild_id`` chooses the snowflake (and so the shard, ``(id >> 22) % shard count``)."""
        bot_role_id = self._ids.next()
        guild_id = guild_id or self._ids.next()
        guild = FakeGuild(guild_id, name, owner or self.owner_user, bot_role_id)
        for member in (self.bot_user, guild.owner):
            guild.members[member.id] = member
        self.guilds[guild.id] = guild
        return guild

    def role(self, guild: FakeGuild, name: str) -> int:
        """A role made in ``guild`` (create it before discord.py connects, as GUILD_CREATE lists roles)."""
        role_id = self._ids.next()
        guild.roles[role_id] = name
        return role_id

    def give_role(self, guild: FakeGuild, user: FakeUser, role_id: int) -> None:
        """``user`` holds the role from now on: member objects in later events carry it."""
        assert role_id in guild.roles
        guild.members.setdefault(user.id, user)
        guild.member_roles.setdefault(user.id, []).append(role_id)

    def text_channel(self, guild: FakeGuild, name: str = "general") -> FakeChannel:
        channel = FakeChannel(self._ids.next(), GUILD_TEXT, name, guild_id=guild.id)
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        return channel

    def thread(
        self,
        parent: FakeChannel,
        name: str,
        *,
        private: bool = False,
        owner: FakeUser | None = None,
        thread_id: int | None = None,
    ) -> FakeChannel:
        thread = FakeChannel(
            thread_id or self._ids.next(),
            PRIVATE_THREAD if private else PUBLIC_THREAD,
            name,
            guild_id=parent.guild_id,
            parent_id=parent.id,
            owner_id=(owner or self.bot_user).id,
        )
        assert parent.guild_id is not None
        self.guilds[parent.guild_id].threads.append(thread)
        self.channels[thread.id] = thread
        return thread

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        for channel in self.channels.values():
            if channel.type == DM and channel.recipient == user:
                return channel
        channel = FakeChannel(self._ids.next(), DM, "", recipient=user)
        self.channels[channel.id] = channel
        return channel

    def messages_in(self, channel: FakeChannel) -> list[SentMessage]:
        return [m for m in self.messages if m.channel_id == channel.id]

    def bot_messages(self, channel: FakeChannel | None = None) -> list[SentMessage]:
        return [
            m
            for m in self.messages
            if m.author == self.bot_user and (channel is None or m.channel_id == channel.id)
        ]

    def message(self, message_id: int) -> SentMessage:
        return self._messages_by_id[message_id]

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int = 429,
        retry_after: float = 0.05,
        times: int = 1,
        is_global: bool = False,
        via: bool = True,
    ) -> None:
        """Answer the next `times` matching requests (path regex, no `/api/v10`) with `status`.

        429s carry `Via` and the JSON body unless `via=False` (what Cloudflare's bans look like).
        """
        pattern = re.compile(path_pattern)
        self._limiter.add_fault(Fault(method.upper(), pattern, status, retry_after, times, is_global, via))

    def hold_next(self, method: str, path_pattern: str) -> asyncio.Event:
        """The next matching request (path regex, no `/api/v10`) is answered only once the returned
        event is set, as when Discord is slow to answer; its arrival is recorded as it comes."""
        release = asyncio.Event()
        self._holds.append((method.upper(), re.compile(path_pattern), release))
        return release

    def age_interaction(self, interaction: FakeInteraction, seconds: float) -> None:
        """Pretend `interaction` was created `seconds` earlier (deadline and token tests)."""
        interaction.created_at -= seconds

    async def reconnect_gateway(self) -> None:
        await self.gateway.reconnect_all()

    async def drop_gateway(self, code: int = 4000) -> None:
        await self.gateway.drop_all(code)

    # ------------------------------------------------------------------ events from users

    async def message_create(
        self,
        channel: FakeChannel,
        author: FakeUser,
        content: str = "",
        *,
        mentions: Sequence[FakeUser] = (),
        attachments: Sequence[FakeAttachment] = (),
        reference: SentMessage | None = None,
        embeds: Sequence[JSON] = (),
    ) -> SentMessage:
        """A user posts a message; discord.py gets MESSAGE_CREATE (blanked without the intent)."""
        self._join(channel, author)
        stored = [self._store_file(a.filename, a.data, a.content_type) for a in attachments]
        message = SentMessage(
            id=self._ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            content=content,
            embeds=list(embeds),
            attachments=stored,
            mentions=self._mentioned(content, mentions),
            message_reference=self._reference_to(reference),
            type=19 if reference else 0,
            created_at=time.monotonic(),
        )
        self._remember(message)
        await self._announce(message, "MESSAGE_CREATE")
        return message

    async def slash_command(
        self,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: FakeUser,
        name: str,
        options: Mapping[str, Any] | list[JSON] | None = None,
        *,
        resolved: JSON | None = None,
        permissions: int = MEMBER_PERMISSIONS,
        app_permissions: int = BOT_PERMISSIONS,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs `/name`: INTERACTION_CREATE type 2 with a fresh id and token.

        `options` may be Discord's option list or a mapping of name to value (types come from
        the registered command, else from the Python type).
        """
        guild_id = guild.id if guild else None
        command = self._registered_command(name, guild_id)
        data: JSON = {
            "id": str(command["id"]) if command else str(self._ids.next()),
            "name": name,
            "type": 1,
            "options": self._options(options, command),
        }
        if command is not None and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        if resolved is not None:
            data["resolved"] = resolved
        interaction = self._new_interaction(2, guild, channel, user, name=name)
        payload = self._interaction_payload(interaction, guild, permissions, app_permissions)
        payload["data"] = data
        payload["locale"] = locale
        await self._deliver(interaction, payload)
        return interaction

    async def component_click(
        self,
        message: SentMessage,
        user: FakeUser,
        custom_id: str,
        *,
        values: Sequence[str] | None = None,
        permissions: int = MEMBER_PERMISSIONS,
    ) -> FakeInteraction:
        """A user clicks a button (or picks `values` in a select) on one of the bot's messages."""
        channel = self.channels[message.channel_id]
        guild = self.guilds.get(message.guild_id) if message.guild_id else None
        interaction = self._new_interaction(3, guild, channel, user, custom_id=custom_id)
        interaction.message_id = message.id
        payload = self._interaction_payload(interaction, guild, permissions, BOT_PERMISSIONS)
        data: JSON = {
            "custom_id": custom_id,
            # A button (2) unless the message says otherwise.
            "component_type": _component_type(message.components, custom_id) or 2,
        }
        if values is not None:
            data["values"] = list(values)
        payload["data"] = data
        payload["message"] = self._gateway_message(message)
        await self._deliver(interaction, payload)
        return interaction

    def _new_interaction(
        self,
        kind: int,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: FakeUser,
        *,
        name: str = "",
        custom_id: str = "",
    ) -> FakeInteraction:
        if guild is not None:
            guild.members.setdefault(user.id, user)
        return FakeInteraction(
            id=self._ids.next(),
            token=f"aW50ZXJhY3Rpb246{secrets.token_urlsafe(64)}",
            type=kind,
            channel=channel,
            user=user,
            guild_id=guild.id if guild else None,
            created_at=time.monotonic(),
            name=name,
            custom_id=custom_id,
        )

    def _interaction_payload(
        self,
        interaction: FakeInteraction,
        guild: FakeGuild | None,
        permissions: int,
        app_permissions: int,
    ) -> JSON:
        channel = channel_payload(interaction.channel) | {"permissions": str(permissions)}
        payload: JSON = {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": interaction.type,
            "token": interaction.token,
            "version": 1,
            "channel_id": str(interaction.channel.id),
            "channel": channel,
            "app_permissions": str(app_permissions),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": self.limits.upload_limit,
        }
        if guild is None:
            payload["user"] = user_payload(interaction.user)
            payload["context"] = 1  # BOT_DM
            payload["authorizing_integration_owners"] = {"0": "0"}
            return payload
        payload["context"] = 0  # GUILD
        payload["authorizing_integration_owners"] = {"0": str(guild.id)}
        payload["guild_id"] = str(guild.id)
        payload["guild"] = {"id": str(guild.id), "locale": guild.preferred_locale, "features": []}
        payload["guild_locale"] = guild.preferred_locale
        payload["member"] = member_payload(guild, interaction.user, permissions)
        return payload

    async def _deliver(self, interaction: FakeInteraction, payload: JSON) -> None:
        self.interactions.append(interaction)
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        await self.notify()

    # ------------------------------------------------------------------ helpers for state

    def _join(self, channel: FakeChannel, user: FakeUser) -> None:
        self.users.setdefault(user.id, user)
        if channel.guild_id is not None:
            self.guilds[channel.guild_id].members.setdefault(user.id, user)

    def _mentioned(self, content: str, extra: Iterable[FakeUser]) -> list[FakeUser]:
        found = [self.users[int(x)] for x in _USER_MENTION.findall(content) if int(x) in self.users]
        unique: dict[int, FakeUser] = {u.id: u for u in [*found, *extra]}
        return list(unique.values())

    def _reference_to(self, message: SentMessage | None) -> JSON | None:
        if message is None:
            return None
        reference: JSON = {
            "type": 0,
            "message_id": str(message.id),
            "channel_id": str(message.channel_id),
        }
        if message.guild_id is not None:
            reference["guild_id"] = str(message.guild_id)
        return reference

    def _store_file(self, filename: str, data: bytes, content_type: str | None = None) -> StoredAttachment:
        guessed = mimetypes.guess_type(filename)[0]
        stored = StoredAttachment(
            self._ids.next(), filename, data, content_type or guessed or "application/octet-stream"
        )
        self._files[stored.id] = stored
        return stored

    def _remember(self, message: SentMessage) -> None:
        self.messages.append(message)
        self._messages_by_id[message.id] = message

    def _payload(self, message: SentMessage) -> JSON:
        return message_payload(message, self.base_url, app_id=self.application_id)

    def _gateway_message(self, message: SentMessage) -> JSON:
        payload = self._payload(message)
        if message.guild_id is not None:
            guild = self.guilds[message.guild_id]
            payload["guild_id"] = str(guild.id)
            member = member_payload(guild, message.author)
            member.pop("user")
            payload["member"] = member
        if message.message_reference is not None:
            referenced = self._messages_by_id.get(int(message.message_reference["message_id"]))
            if referenced is not None:
                payload["referenced_message"] = self._payload(referenced)
        return payload

    async def _announce(self, message: SentMessage, event: str) -> None:
        """Send MESSAGE_CREATE/UPDATE to sessions allowed to see it (never for ephemerals)."""
        if message.ephemeral:
            return
        intent = INTENT_GUILD_MESSAGES if message.guild_id is not None else INTENT_DIRECT_MESSAGES
        visible = (
            message.guild_id is None or message.author == self.bot_user or self.bot_user in message.mentions
        )
        await self.gateway.dispatch(
            event, self._gateway_message(message), intent=intent, content_visible_anyway=visible
        )
        await self.notify()

    def _registered_command(self, name: str, guild_id: int | None) -> JSON | None:
        for scope in (guild_id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        return None

    @staticmethod
    def _options(options: Mapping[str, Any] | list[JSON] | None, command: JSON | None) -> list[JSON]:
        if options is None:
            return []
        if isinstance(options, list):
            return options
        declared = {o["name"]: o["type"] for o in (command or {}).get("options", [])}
        return [
            {"name": key, "type": declared.get(key) or _option_type(value), "value": value}
            for key, value in options.items()
        ]

    # ------------------------------------------------------------------ HTTP plumbing

    def _add_routes(self, app: web.Application) -> None:
        add = self._route_adder(app)
        add("GET", "/users/@me", self._get_me)
        add("GET", "/users/{user_id:\\d+}", self._get_user)
        add("POST", "/users/@me/channels", self._create_dm)
        add("GET", "/oauth2/applications/@me", self._get_application)
        add("GET", "/gateway", self._get_gateway, bot_auth=False)
        add("GET", "/gateway/bot", self._get_gateway)
        self._add_channel_routes(add)
        self._add_interaction_routes(add)
        self._add_command_routes(add)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._unknown_route)

    def _add_channel_routes(self, add: Callable[..., None]) -> None:
        channel = "/channels/{channel_id:\\d+}"
        message = channel + "/messages/{message_id:\\d+}"
        add("GET", channel, self._get_channel)
        add("POST", channel + "/messages", self._create_message, bucket="message.create")
        add("GET", message, self._get_message)
        add("PATCH", message, self._edit_message, bucket="message.edit")
        add("DELETE", message, self._delete_message, bucket="message.delete")
        add("POST", channel + "/typing", self._typing)
        add("POST", message + "/threads", self._thread_from_message, bucket="thread.create")
        add("POST", channel + "/threads", self._thread_without_message, bucket="thread.create")

    def _add_interaction_routes(self, add: Callable[..., None]) -> None:
        callback = "/interactions/{interaction_id:\\d+}/{token}/callback"
        add("POST", callback, self._interaction_callback, bucket="interaction.callback", bot_auth=False)
        hook = "/webhooks/{app_id:\\d+}/{token}"
        original = hook + "/messages/@original"
        followup = hook + "/messages/{message_id:\\d+}"
        for method, handler in (
            ("GET", self._get_original),
            ("PATCH", self._edit_original),
            ("DELETE", self._delete_original),
        ):
            add(method, original, handler, bucket="webhook", bot_auth=False)
        add("POST", hook, self._create_followup, bucket="webhook", bot_auth=False)
        for method, handler in (
            ("GET", self._get_followup),
            ("PATCH", self._edit_followup),
            ("DELETE", self._delete_followup),
        ):
            add(method, followup, handler, bucket="webhook", bot_auth=False)

    def _add_command_routes(self, add: Callable[..., None]) -> None:
        app = "/applications/{app_id:\\d+}"
        for path in (app + "/commands", app + "/guilds/{guild_id:\\d+}/commands"):
            add("GET", path, self._get_commands)
            add("PUT", path, self._put_commands, bucket="commands.put")

    def _route_adder(self, app: web.Application) -> Callable[..., None]:
        def add(
            method: str,
            path: str,
            handler: Handler,
            *,
            bucket: str | None = None,
            bot_auth: bool = True,
        ) -> None:
            # Interaction endpoints are outside the bot's global limit, as on Discord.
            spec = RouteSpec(bucket or f"{method} {path}", bot_auth, global_limit=bot_auth)

            async def endpoint(request: web.Request) -> web.StreamResponse:
                return await self._serve(request, handler, spec)

            app.router.add_route(method, API_PREFIX + path, endpoint)

        return add

    async def _serve(self, request: web.Request, handler: Handler, spec: RouteSpec) -> web.Response:
        now = time.monotonic()
        path = request.path.removeprefix(API_PREFIX)
        headers: dict[str, str] = {}
        body = Body(None, [])
        try:
            if spec.bot_auth and request.headers.get(hdrs.AUTHORIZATION) != f"Bot {self.token}":
                raise DiscordError(401, 0, "401: Unauthorized")
            body = await read_body(request, self.limits.request_limit)
            await self._held(request.method, path)
            if (fault := self._limiter.take_fault(request.method, path)) is not None:
                response = self._limiter.fault_response(fault)
                await self._record(request, path, body, response, now, injected=True)
                return response
            if spec.global_limit:
                self._limiter.check_global(request.method, path, now)
            headers = self._limiter.take_bucket(spec, _major(request), request.method, path, now)
            response = reply_response(await handler(request, body), headers)
        except TooManyRequests as limited:
            response = too_many_response(limited, headers)
        except DiscordError as error:
            response = json_response(error.status, error.body(), headers)
        await self._record(request, path, body, response, now)
        return response

    async def _held(self, method: str, path: str) -> None:
        for i, (held_method, pattern, release) in enumerate(self._holds):
            if held_method == method and pattern.fullmatch(path):
                del self._holds[i]
                self.holding.append(path)
                await self.notify()
                await release.wait()
                self.holding.remove(path)
                return

    async def _record(
        self,
        request: web.Request,
        path: str,
        body: Body,
        response: web.Response,
        now: float,
        *,
        injected: bool = False,
    ) -> None:
        recorded = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            body=body.json,
            status=response.status,
            at=now,
            headers=dict(response.headers),
        )
        self.requests.append(recorded)
        if injected:
            self.injected.append(recorded)
        await self.notify()

    async def _unknown_route(self, request: web.Request) -> web.Response:
        body = Body(None, [])
        response = json_response(404, {"message": "404: Not Found", "code": 0}, {})
        await self._record(request, request.path.removeprefix(API_PREFIX), body, response, time.monotonic())
        return response

    async def _cdn(self, request: web.Request) -> web.Response:
        stored = self._files.get(int(request.match_info["attachment_id"]))
        if stored is None or stored.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})

    # ------------------------------------------------------------------ users, app, gateway

    async def _get_me(self, request: web.Request, body: Body) -> Reply:
        extra = {"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None}
        return Reply(200, user_payload(self.bot_user) | extra)

    async def _get_user(self, request: web.Request, body: Body) -> Reply:
        user = self.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return Reply(200, user_payload(user))

    async def _create_dm(self, request: web.Request, body: Body) -> Reply:
        user = self.users.get(int((body.json or {}).get("recipient_id", 0)))
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return Reply(200, channel_payload(self.dm_channel(user)))

    async def _get_application(self, request: web.Request, body: Body) -> Reply:
        return Reply(
            200,
            {
                "id": str(self.application_id),
                "name": self.bot_user.name,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": user_payload(self.owner_user),
                "team": None,
                "flags": application_flags(self.approved_intents),
                "bot": user_payload(self.bot_user),
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "approximate_guild_count": len(self.guilds),
                "integration_types_config": {"0": {}},
            },
        )

    async def _get_gateway(self, request: web.Request, body: Body) -> Reply:
        payload: JSON = {"url": self.gateway_url}
        if request.path.endswith("/bot"):
            payload["shards"] = 1
            payload["session_start_limit"] = {
                "total": 1000,
                "remaining": 1000,
                "reset_after": 0,
                "max_concurrency": 1,
            }
        return Reply(200, payload)

    # ------------------------------------------------------------------ channels and messages

    def _channel(self, request: web.Request) -> FakeChannel:
        channel = self.channels.get(int(request.match_info["channel_id"]))
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel

    def _channel_message(self, request: web.Request) -> SentMessage:
        channel = self._channel(request)
        message = self._messages_by_id.get(int(request.match_info["message_id"]))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_channel(self, request: web.Request, body: Body) -> Reply:
        return Reply(200, channel_payload(self._channel(request)))

    async def _create_message(self, request: web.Request, body: Body) -> Reply:
        channel = self._channel(request)
        payload = body.json or {}
        message = self._new_bot_message(channel, payload, body.uploads)
        reference = payload.get("message_reference")
        if reference:
            message.message_reference = self._resolve_reference(reference, channel)
            message.type = 19
        self._remember(message)
        if self.echo_own_messages:
            await self._announce(message, "MESSAGE_CREATE")
        return Reply(200, self._payload(message))

    def _resolve_reference(self, reference: JSON, channel: FakeChannel) -> JSON:
        target = self._messages_by_id.get(int(reference.get("message_id", 0)))
        if target is None and reference.get("fail_if_not_exists", True):
            raise form_error(
                {
                    "message_reference": {
                        "_errors": [
                            {"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown message"}
                        ]
                    }
                }
            )
        resolved = self._reference_to(target)
        return resolved or {"type": 0, "channel_id": str(channel.id)}

    def _new_bot_message(
        self,
        channel: FakeChannel,
        payload: JSON,
        uploads: list[Upload],
        *,
        interaction: FakeInteraction | None = None,
        validate: bool = True,
    ) -> SentMessage:
        files = self._files_for(payload, uploads)
        if validate:
            validate_message(payload, files, self.limits, creating=True)
        content = payload.get("content") or ""
        message = SentMessage(
            id=self._ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=self.bot_user,
            content=content,
            embeds=list(payload.get("embeds") or []),
            attachments=files,
            allowed_mentions=payload.get("allowed_mentions"),
            components=list(payload.get("components") or []),
            flags=int(payload.get("flags") or 0),
            created_at=time.monotonic(),
        )
        message.mentions = [self.users[u] for u in message.pings.users if u in self.users]
        if interaction is not None:
            message.interaction_id = interaction.id
            message.interaction_token = interaction.token
            message.webhook_id = self.application_id
            message.type = 20 if interaction.type == 2 else 0
        return message

    def _files_for(self, payload: JSON, uploads: list[Upload]) -> list[StoredAttachment]:
        described = {
            int(a["id"]): a for a in payload.get("attachments") or [] if str(a.get("id", "")).isdigit()
        }
        files = []
        for upload in uploads:
            meta = described.get(upload.index, {})
            stored = self._store_file(meta.get("filename") or upload.filename, upload.data)
            if meta.get("description"):
                stored = StoredAttachment(
                    stored.id, stored.filename, stored.data, stored.content_type, meta["description"]
                )
                self._files[stored.id] = stored
            files.append(stored)
        return files

    async def _get_message(self, request: web.Request, body: Body) -> Reply:
        return Reply(200, self._payload(self._channel_message(request)))

    async def _edit_message(self, request: web.Request, body: Body) -> Reply:
        message = self._channel_message(request)
        if message.author != self.bot_user:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        self._apply_edit(message, body.json or {}, body.uploads)
        await self._announce(message, "MESSAGE_UPDATE")
        return Reply(200, self._payload(message))

    def _apply_edit(self, message: SentMessage, payload: JSON, uploads: list[Upload]) -> None:
        new_files = self._files_for(payload, uploads)
        validate_message(payload, new_files, self.limits, creating=False)
        message.edits.append(message.snapshot(time.monotonic()))
        if "content" in payload:
            message.content = payload["content"] or ""
        if "embeds" in payload:
            message.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            message.components = list(payload["components"] or [])
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        if "attachments" in payload:
            kept = {str(a.get("id")) for a in payload["attachments"] or []}
            message.attachments = [a for a in message.attachments if str(a.id) in kept] + new_files
        # The first edit of a deferred answer replaces the "thinking" placeholder.
        message.flags &= ~FLAG_LOADING
        message.edited_timestamp = iso_now()

    async def _delete_message(self, request: web.Request, body: Body) -> Reply:
        message = self._channel_message(request)
        await self._delete(message)
        return Reply(204)

    async def _delete(self, message: SentMessage) -> None:
        message.deleted = True
        if message.ephemeral:
            return
        data: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
        intent = INTENT_GUILD_MESSAGES if message.guild_id else INTENT_DIRECT_MESSAGES
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
        await self.gateway.dispatch("MESSAGE_DELETE", data, intent=intent)

    async def _typing(self, request: web.Request, body: Body) -> Reply:
        self._channel(request)
        return Reply(204)

    async def _thread_from_message(self, request: web.Request, body: Body) -> Reply:
        message = self._channel_message(request)
        parent = self._channel(request)
        # Discord gives a thread started from a message the message's own id.
        thread = self._new_thread(parent, body.json or {}, PUBLIC_THREAD, thread_id=message.id)
        return Reply(201, await self._announce_thread(thread))

    async def _thread_without_message(self, request: web.Request, body: Body) -> Reply:
        parent = self._channel(request)
        payload = body.json or {}
        kind = int(payload.get("type") or PRIVATE_THREAD)
        thread = self._new_thread(parent, payload, kind)
        return Reply(201, await self._announce_thread(thread))

    def _new_thread(
        self, parent: FakeChannel, payload: JSON, kind: int, thread_id: int | None = None
    ) -> FakeChannel:
        if parent.type != GUILD_TEXT:
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        name = str(payload.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise form_error({"name": max_length_error(100)})
        if thread_id is not None and thread_id in self.channels:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        return self.thread(parent, name, private=kind == PRIVATE_THREAD, thread_id=thread_id)

    async def _announce_thread(self, thread: FakeChannel) -> JSON:
        payload = channel_payload(thread)
        await self.gateway.dispatch("THREAD_CREATE", payload | {"newly_created": True}, intent=INTENT_GUILDS)
        return payload

    # ------------------------------------------------------------------ interactions

    async def _interaction_callback(self, request: web.Request, body: Body) -> Reply:
        interaction = self._live_interaction(request)
        payload = body.json or {}
        kind = int(payload.get("type", 0))
        data = payload.get("data") or {}
        original = await self._acknowledge(interaction, kind, data, body.uploads)
        interaction.callback_type = kind
        interaction.callback_data = data
        await self.notify()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return Reply(204)
        return Reply(200, self._callback_response(interaction, kind, original))

    def _live_interaction(self, request: web.Request) -> FakeInteraction:
        wanted = int(request.match_info["interaction_id"])
        for interaction in self.interactions:
            if interaction.id == wanted and interaction.token == request.match_info["token"]:
                late = time.monotonic() - interaction.created_at > self.limits.callback_deadline
                if late:
                    break
                if interaction.callback_type is not None:
                    raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
                return interaction
        raise DiscordError(404, 10062, "Unknown interaction")

    async def _acknowledge(
        self, interaction: FakeInteraction, kind: int, data: JSON, uploads: list[Upload]
    ) -> SentMessage | None:
        if kind == 4:
            message = self._new_bot_message(interaction.channel, data, uploads, interaction=interaction)
        elif kind == 5:
            # The "thinking…" placeholder: empty, LOADING, ephemeral if asked.
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            message = self._new_bot_message(
                interaction.channel, {"flags": flags}, [], interaction=interaction, validate=False
            )
        elif kind in (6, 7) and interaction.message_id is not None:
            message = self._messages_by_id[interaction.message_id]
            if kind == 7:
                self._apply_edit(message, data, uploads)
                await self._announce(message, "MESSAGE_UPDATE")
            interaction.original_message_id = message.id
            return message
        elif kind in (1, 8, 9):
            return None
        else:
            raise form_error(
                {
                    "type": {
                        "_errors": [
                            {
                                "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                                "message": "Invalid interaction response type",
                            }
                        ]
                    }
                }
            )
        self._remember(message)
        interaction.original_message_id = message.id
        await self._announce(message, "MESSAGE_CREATE")
        return message

    def _callback_response(
        self, interaction: FakeInteraction, kind: int, original: SentMessage | None
    ) -> JSON:
        info: JSON = {
            "id": str(interaction.id),
            "type": interaction.type,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(original and original.ephemeral),
        }
        if original is not None:
            info["response_message_id"] = str(original.id)
        resource: JSON = {"type": kind}
        if kind in (4, 7) and original is not None:
            resource["message"] = self._payload(original)
        return {"interaction": info, "resource": resource}

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        if int(request.match_info["app_id"]) != self.application_id:
            raise DiscordError(404, 10015, "Unknown Webhook")
        token = request.match_info["token"]
        for interaction in self.interactions:
            if interaction.token == token:
                if time.monotonic() - interaction.created_at > self.limits.token_ttl:
                    break
                return interaction
        raise DiscordError(401, 50027, "Invalid Webhook Token")

    def _original(self, request: web.Request) -> SentMessage:
        interaction = self._webhook_interaction(request)
        if interaction.original_message_id is None:
            raise DiscordError(404, 10008, "Unknown Message")
        message = self._messages_by_id[interaction.original_message_id]
        if message.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_original(self, request: web.Request, body: Body) -> Reply:
        return Reply(200, self._payload(self._original(request)))

    async def _edit_original(self, request: web.Request, body: Body) -> Reply:
        message = self._original(request)
        self._apply_edit(message, body.json or {}, body.uploads)
        await self._announce(message, "MESSAGE_UPDATE")
        return Reply(200, self._payload(message))

    async def _delete_original(self, request: web.Request, body: Body) -> Reply:
        await self._delete(self._original(request))
        return Reply(204)

    async def _create_followup(self, request: web.Request, body: Body) -> Reply:
        interaction = self._webhook_interaction(request)
        if interaction.callback_type is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        message = self._new_bot_message(
            interaction.channel, body.json or {}, body.uploads, interaction=interaction
        )
        message.type = 0
        self._remember(message)
        await self._announce(message, "MESSAGE_CREATE")
        if request.query.get("wait") not in ("1", "true", "True"):
            return Reply(204)
        return Reply(200, self._payload(message))

    def _followup(self, request: web.Request) -> SentMessage:
        interaction = self._webhook_interaction(request)
        message = self._messages_by_id.get(int(request.match_info["message_id"]))
        if message is None or message.deleted or message.interaction_token != interaction.token:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_followup(self, request: web.Request, body: Body) -> Reply:
        return Reply(200, self._payload(self._followup(request)))

    async def _edit_followup(self, request: web.Request, body: Body) -> Reply:
        message = self._followup(request)
        self._apply_edit(message, body.json or {}, body.uploads)
        await self._announce(message, "MESSAGE_UPDATE")
        return Reply(200, self._payload(message))

    async def _delete_followup(self, request: web.Request, body: Body) -> Reply:
        await self._delete(self._followup(request))
        return Reply(204)

    # ------------------------------------------------------------------ application commands

    def _command_scope(self, request: web.Request) -> int | None:
        if int(request.match_info["app_id"]) != self.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        if int(guild_id) not in self.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return int(guild_id)

    async def _get_commands(self, request: web.Request, body: Body) -> Reply:
        return Reply(200, self.commands.get(self._command_scope(request), []))

    async def _put_commands(self, request: web.Request, body: Body) -> Reply:
        scope = self._command_scope(request)
        wanted = body.json or []
        _check_commands(wanted)
        stored = [self._stored_command(scope, c) for c in wanted]
        self.commands[scope] = stored
        self.command_syncs.append(CommandSync(scope, stored, time.monotonic()))
        return Reply(200, stored)

    def _stored_command(self, scope: int | None, command: JSON) -> JSON:
        kind = int(command.get("type", 1))
        # Overwriting keeps the id of a command with the same name and type, as Discord does.
        key = (scope, command["name"], kind)
        command_id = self._command_ids.setdefault(key, self._ids.next())
        stored: JSON = {
            "id": str(command_id),
            "application_id": str(self.application_id),
            "version": str(self._ids.next()),
            "type": kind,
            "name": command["name"],
            "name_localizations": command.get("name_localizations"),
            "description": command.get("description", ""),
            "description_localizations": command.get("description_localizations"),
            "options": command.get("options", []),
            "default_member_permissions": command.get("default_member_permissions"),
            "nsfw": command.get("nsfw", False),
            "contexts": command.get("contexts"),
            "integration_types": command.get("integration_types", [0]),
        }
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored


_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def _check_commands(commands: list[JSON]) -> None:
    chat_input = [c for c in commands if int(c.get("type", 1)) == 1]
    if len(chat_input) > 100:
        raise DiscordError(400, 30032, "Maximum number of application commands reached (100)")
    for index, command in enumerate(commands):
        name = str(command.get("name", ""))
        bad_name = not _COMMAND_NAME.match(name) or (
            int(command.get("type", 1)) == 1 and name != name.lower()
        )
        if bad_name:
            raise form_error(
                {
                    str(index): {
                        "name": {
                            "_errors": [
                                {
                                    "code": "APPLICATION_COMMAND_INVALID_NAME",
                                    "message": "Command name is invalid",
                                }
                            ]
                        }
                    }
                }
            )
        if int(command.get("type", 1)) == 1 and not 1 <= len(command.get("description", "")) <= 100:
            raise form_error({str(index): {"description": max_length_error(100)}})
        for locale, local in (command.get("name_localizations") or {}).items():
            if not _COMMAND_NAME.match(str(local)) or str(local) != str(local).lower():
                raise form_error(
                    {
                        str(index): {
                            "name_localizations": {
                                locale: {
                                    "_errors": [
                                        {
                                            "code": "APPLICATION_COMMAND_INVALID_NAME",
                                            "message": "Command name is invalid",
                                        }
                                    ]
                                }
                            }
                        }
                    }
                )
    # Names are unique per type in every locale: a localized name counts where it is given.
    locales = {locale for c in chat_input for locale in c.get("name_localizations") or {}}
    for locale in locales:
        names = [(c.get("name_localizations") or {}).get(locale, c["name"]) for c in chat_input]
        if len(names) != len(set(names)):
            raise form_error(
                {
                    "_errors": [
                        {
                            "code": "APPLICATION_COMMANDS_DUPLICATE_NAME",
                            "message": f"Application command names must be unique ({locale})",
                        }
                    ]
                }
            )


def _major(request: web.Request) -> str:
    info = request.match_info
    return info.get("channel_id") or info.get("guild_id") or info.get("token") or ""


def _option_type(value: object) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


def _component_type(components: list[JSON], custom_id: str) -> int | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return int(component.get("type", 2))
        found = _component_type(component.get("components") or [], custom_id)
        if found is not None:
            return found
    return None
