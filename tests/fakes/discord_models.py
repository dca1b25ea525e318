"""Records, limits and JSON payload builders for the fake Discord in `tests.fakes.discord`.

Everything here is plain data: what the fake knows (users, guilds, channels, messages,
interactions), the limits it enforces, and how those records look on the wire in the shape
discord.py 2.7 parses (`discord/types/*.py`). The server itself lives in `discord.py` next
to this module.
"""

from __future__ import annotations

import datetime
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Channel types.
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (PUBLIC_THREAD, PRIVATE_THREAD)

# Message flags.
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7

# Permissions a plain member has in a fresh guild, and what the bot role adds.
MEMBER_PERMISSIONS = (
    (1 << 6)  # ADD_REACTIONS
    | (1 << 10)  # VIEW_CHANNEL
    | (1 << 11)  # SEND_MESSAGES
    | (1 << 14)  # EMBED_LINKS
    | (1 << 15)  # ATTACH_FILES
    | (1 << 16)  # READ_MESSAGE_HISTORY
    | (1 << 31)  # USE_APPLICATION_COMMANDS
    | (1 << 35)  # CREATE_PUBLIC_THREADS
    | (1 << 38)  # SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = MEMBER_PERMISSIONS | (1 << 13) | (1 << 34)  # MANAGE_MESSAGES, MANAGE_THREADS

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


@dataclass(frozen=True, slots=True)
class DiscordLimits:
    """What the fake enforces; `fast()` scales the windows down so tests stay quick.

    Both discord.py and the bot really sleep on these numbers, so test windows are short.
    """

    window: float = 5.0
    messages_per_window: int = 5
    webhook_per_window: int = 5
    default_per_window: int = 50
    global_per_window: int = 50
    global_window: float = 1.0
    callback_deadline: float = 3.0
    token_ttl: float = 15 * 60.0
    content_length: int = 2000
    upload_limit: int = 10 * 1024 * 1024
    request_limit: int = 25 * 1024 * 1024
    heartbeat_interval_ms: int = 41_250

    @classmethod
    def fast(cls, **overrides: Any) -> DiscordLimits:
        """Discord's counts with windows of a fifth of a second."""
        values: dict[str, Any] = {"window": 0.2, "global_window": 0.2}
        values.update(overrides)
        return cls(**values)


class SnowflakeFactory:
    """Fresh, strictly increasing snowflakes built from the current time, like Discord's."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        # Several ids in one millisecond must still differ and keep their order.
        self._last = max(value, self._last + 1)
        return self._last


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass(frozen=True, slots=True)
class FakeUser:
    id: int
    name: str
    bot: bool = False


@dataclass(frozen=True, slots=True)
class FakeChannel:
    """A guild text channel, a thread (`parent_id` set) or a DM (`recipient` set)."""

    id: int
    type: int
    name: str
    guild_id: int | None = None
    parent_id: int | None = None
    owner_id: int | None = None
    recipient: FakeUser | None = None


@dataclass(slots=True)
class FakeGuild:
    """A guild; mutable because tests add channels, threads and members to it."""

    id: int
    name: str
    owner: FakeUser
    bot_role_id: int
    channels: list[FakeChannel] = field(default_factory=list)
    threads: list[FakeChannel] = field(default_factory=list)
    members: dict[int, FakeUser] = field(default_factory=dict)
    # Roles made by the server's admins (id -> name) and the ones each member holds.
    roles: dict[int, str] = field(default_factory=dict)
    member_roles: dict[int, list[int]] = field(default_factory=dict)
    # The server's language (Discord's "Server Primary Language"), e.g. "tr" or "no".
    preferred_locale: str = "en-US"


@dataclass(frozen=True, slots=True)
class FakeAttachment:
    """A file a user attaches to an injected message (served back on the fake's CDN path)."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class StoredAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class MessageVersion:
    """One earlier state of an edited message."""

    content: str
    embeds: list[JSON]
    components: list[JSON]
    flags: int
    allowed_mentions: JSON | None
    at: float


@dataclass(frozen=True, slots=True)
class Pings:
    """Whom Discord would notify for a message, given its content and `allowed_mentions`."""

    users: frozenset[int]
    roles: frozenset[int]
    everyone: bool
    replied_user: bool

    @property
    def anyone(self) -> bool:
        return bool(self.users or self.roles or self.everyone or self.replied_user)


@dataclass(slots=True)
class SentMessage:
    """A message as the fake stores it; mutable because edits and deletes change it.

    `edits` keeps every earlier version, oldest first; `interaction_token` is set for
    messages made through an interaction response or its webhook.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    allowed_mentions: JSON | None = None
    components: list[JSON] = field(default_factory=list)
    flags: int = 0
    mentions: list[FakeUser] = field(default_factory=list)
    message_reference: JSON | None = None
    interaction_id: int | None = None
    interaction_token: str | None = None
    webhook_id: int | None = None
    type: int = 0
    created_at: float = 0.0
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    edits: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    def snapshot(self, at: float) -> MessageVersion:
        return MessageVersion(
            self.content,
            list(self.embeds),
            list(self.components),
            self.flags,
            self.allowed_mentions,
            at,
        )

    @property
    def pings(self) -> Pings:
        return compute_pings(self.content, self.allowed_mentions, self.message_reference)


def compute_pings(content: str, allowed: JSON | None, reference: JSON | None) -> Pings:
    """Apply Discord's allowed_mentions rules; without the field, everything pings."""
    users = frozenset(int(x) for x in _USER_MENTION.findall(content))
    roles = frozenset(int(x) for x in _ROLE_MENTION.findall(content))
    everyone = "@everyone" in content or "@here" in content
    is_reply = reference is not None
    if allowed is None:
        return Pings(users, roles, everyone, is_reply)
    parse = allowed.get("parse", [])
    if "users" not in parse:
        users = users & frozenset(int(x) for x in allowed.get("users", []))
    if "roles" not in parse:
        roles = roles & frozenset(int(x) for x in allowed.get("roles", []))
    return Pings(
        users,
        roles,
        everyone and "everyone" in parse,
        is_reply and bool(allowed.get("replied_user", False)),
    )


@dataclass(slots=True)
class FakeInteraction:
    """An interaction the fake sent; mutable because the bot acknowledges it later.

    `created_at` is on the fake's clock; `age()` in the fake moves it back so tests can
    check the 3-second and 15-minute rules without waiting.
    """

    id: int
    token: str
    type: int
    channel: FakeChannel
    user: FakeUser
    guild_id: int | None
    created_at: float
    name: str = ""
    custom_id: str = ""
    message_id: int | None = None
    callback_type: int | None = None
    callback_data: JSON | None = None
    original_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One REST request the fake answered (path without the `/api/v10` prefix)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    at: float
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Violation:
    """A request that went over a limit and got a 429."""

    bucket: str
    method: str
    path: str
    at: float
    retry_after: float
    is_global: bool


@dataclass(frozen=True, slots=True)
class CommandSync:
    """One bulk overwrite (PUT) of application commands; `guild_id` None means global."""

    guild_id: int | None
    commands: list[JSON]
    at: float


class DiscordError(Exception):
    """Raised inside handlers; turned into Discord's JSON error body and status."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> JSON:
        payload: JSON = {"message": self.message, "code": self.code}
        if self.errors is not None:
            payload["errors"] = self.errors
        return payload


def form_error(errors: JSON) -> DiscordError:
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def max_length_error(limit: int) -> JSON:
    return {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}]}


class RateBucket:
    """A fixed window that opens at its first request, as Discord's buckets behave."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.remaining = limit
        self.reset_at = 0.0

    def take(self, now: float) -> bool:
        if now >= self.reset_at:
            self.remaining = self.limit
            self.reset_at = now + self.window
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    def reset_after(self, now: float) -> float:
        # Discord sends milliseconds; rounding up keeps a client that sleeps exactly this long
        # from arriving a hair early.
        return math.ceil(max(self.reset_at - now, 0.0) * 1000) / 1000


# --------------------------------------------------------------------------- payloads


def user_payload(user: FakeUser) -> JSON:
    return {
        "id": str(user.id),
        "username": user.name,
        "global_name": None if user.bot else user.name,
        "discriminator": "0",
        "avatar": None,
        "bot": user.bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
    }


def member_payload(guild: FakeGuild, user: FakeUser, permissions: int | None = None) -> JSON:
    roles = [str(guild.bot_role_id)] if user.bot else [str(r) for r in guild.member_roles.get(user.id, [])]
    payload: JSON = {
        "user": user_payload(user),
        "nick": None,
        "avatar": None,
        "roles": roles,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def channel_payload(channel: FakeChannel, bot: FakeUser | None = None) -> JSON:
    if channel.type == DM:
        assert channel.recipient is not None
        return {
            "id": str(channel.id),
            "type": DM,
            "last_message_id": None,
            "flags": 0,
            "recipients": [user_payload(channel.recipient)],
        }
    payload: JSON = {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(channel.guild_id),
        "name": channel.name,
        "position": 0,
        "flags": 0,
        "parent_id": str(channel.parent_id) if channel.parent_id else None,
        "permission_overwrites": [],
        "nsfw": False,
        "rate_limit_per_user": 0,
        "last_message_id": None,
    }
    if channel.type == GUILD_TEXT:
        payload["topic"] = None
        payload["default_auto_archive_duration"] = 1440
    if channel.type in THREAD_TYPES:
        payload.update(thread_fields(channel))
    return payload


def thread_fields(thread: FakeChannel) -> JSON:
    return {
        "owner_id": str(thread.owner_id),
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso_now(),
            "locked": False,
            "invitable": thread.type == PRIVATE_THREAD,
            "create_timestamp": iso_now(),
        },
    }


def role_payload(role_id: int, name: str, permissions: int, position: int) -> JSON:
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": role_id != 0 and name != "@everyone",
        "mentionable": False,
        "flags": 0,
    }


def guild_payload(guild: FakeGuild, bot: FakeUser) -> JSON:
    """A full GUILD_CREATE body: enough that discord.py caches guild, channels and members."""
    members = [member_payload(guild, user) for user in guild.members.values()]
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner.id),
        "region": "deprecated",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "nsfw": False,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": guild.preferred_locale,
        "features": [],
        "roles": [
            role_payload(guild.id, "@everyone", MEMBER_PERMISSIONS, 0),
            role_payload(guild.bot_role_id, bot.name, BOT_PERMISSIONS, 1),
            *(
                role_payload(role_id, name, MEMBER_PERMISSIONS, 2 + index) | {"managed": False}
                for index, (role_id, name) in enumerate(guild.roles.items())
            ),
        ],
        "emojis": [],
        "stickers": [],
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "max_members": 500_000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "application_id": None,
        "widget_enabled": False,
        "incidents_data": None,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "large": False,
        "unavailable": False,
        "lazy": True,
        "member_count": len(members),
        "members": members,
        "channels": [_without_guild_id(channel_payload(c)) for c in guild.channels],
        "threads": [channel_payload(t) for t in guild.threads],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "embedded_activities": [],
    }


def _without_guild_id(payload: JSON) -> JSON:
    # Channels inside GUILD_CREATE carry no guild_id on the real gateway.
    payload.pop("guild_id", None)
    return payload


def attachment_payload(attachment: StoredAttachment, channel_id: int, base_url: str) -> JSON:
    url = f"{base_url}/attachments/{channel_id}/{attachment.id}/{attachment.filename}"
    return {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "size": len(attachment.data),
        "url": url,
        "proxy_url": url,
        "content_type": attachment.content_type,
        "description": attachment.description,
    }


def message_payload(message: SentMessage, base_url: str, *, app_id: int) -> JSON:
    """A message as REST answers it (gateway events add guild_id and member)."""
    payload: JSON = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "type": message.type,
        "author": user_payload(message.author),
        "content": message.content,
        "timestamp": message.timestamp,
        "edited_timestamp": message.edited_timestamp,
        "tts": False,
        "mention_everyone": False,
        "mentions": [user_payload(u) for u in message.mentions],
        "mention_roles": [],
        "attachments": [attachment_payload(a, message.channel_id, base_url) for a in message.attachments],
        "embeds": message.embeds,
        "components": message.components,
        "pinned": False,
        "flags": message.flags,
    }
    if message.message_reference is not None:
        payload["message_reference"] = message.message_reference
    if message.webhook_id is not None:
        payload["webhook_id"] = str(message.webhook_id)
        payload["application_id"] = str(app_id)
    return payload


# --------------------------------------------------------------------------- validation


def validate_message(
    payload: JSON, files: list[StoredAttachment], limits: DiscordLimits, *, creating: bool
) -> None:
    """Raise Discord's error for content, embeds and uploads over the limits."""
    content = payload.get("content") or ""
    if len(content) > limits.content_length:
        raise form_error({"content": max_length_error(limits.content_length)})
    embeds = payload.get("embeds") or []
    check_embeds(embeds)
    for upload in files:
        if len(upload.data) > limits.upload_limit:
            raise DiscordError(413, 40005, "Request entity too large")
    has_body = content or embeds or files or payload.get("components") or payload.get("poll")
    if creating and not has_body and not payload.get("sticker_ids"):
        raise DiscordError(400, 50006, "Cannot send an empty message")


_EMBED_FIELD_LIMITS = {"title": 256, "description": 4096}


def check_embeds(embeds: list[JSON]) -> None:
    if len(embeds) > 10:
        raise form_error({"embeds": max_length_error(10)})
    total = 0
    for index, embed in enumerate(embeds):
        for key, limit in _EMBED_FIELD_LIMITS.items():
            if len(embed.get(key) or "") > limit:
                raise form_error({"embeds": {str(index): {key: max_length_error(limit)}}})
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise form_error({"embeds": {str(index): {"fields": max_length_error(25)}}})
        total += _embed_size(embed)
    if total > 6000:
        raise form_error(
            {
                "embeds": {
                    "_errors": [
                        {
                            "code": "MAX_EMBED_SIZE_EXCEEDED",
                            "message": "Embed size exceeds maximum size of 6000",
                        }
                    ]
                }
            }
        )


def _embed_size(embed: JSON) -> int:
    texts = [embed.get("title"), embed.get("description")]
    texts.append((embed.get("footer") or {}).get("text"))
    texts.append((embed.get("author") or {}).get("name"))
    for embed_field in embed.get("fields") or []:
        texts.extend([embed_field.get("name"), embed_field.get("value")])
    return sum(len(t or "") for t in texts)
