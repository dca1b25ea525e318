"""The gateway WebSocket of the fake Discord in `tests.fakes.discord`.

Speaks what discord.py 2.7 expects (`discord/gateway.py`): HELLO (op 10), heartbeat acks
(op 11), IDENTIFY (op 2) checked against the token and the approved privileged intents
(close 4004 / 4014), READY then one GUILD_CREATE per guild, dispatches with increasing `s`,
RESUME (op 6) with replay of what was missed, REQUEST_GUILD_MEMBERS (op 8). discord.py asks
for `compress=zlib-stream` in the URL query; frames are then deflated with one shared
`zlib` stream and a Z_SYNC_FLUSH per message, as Discord does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_models import (
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_PRESENCES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    JSON,
    PRIVILEGED_INTENTS,
    guild_payload,
    member_payload,
    user_payload,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

logger = logging.getLogger(__name__)

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

# Application flags Discord sets once a privileged intent is approved for the bot.
_APPROVED_FLAGS = {
    INTENT_GUILD_PRESENCES: 1 << 12,
    INTENT_GUILD_MEMBERS: 1 << 14,
    INTENT_MESSAGE_CONTENT: 1 << 18,
}


def application_flags(approved_intents: int) -> int:
    return sum(flag for intent, flag in _APPROVED_FLAGS.items() if approved_intents & intent)


@dataclass(slots=True)
class GatewayConnection:
    """One WebSocket from a client; mutable because it gains a session and a close code."""

    ws: web.WebSocketResponse
    query: dict[str, str]
    compressor: zlib._Compress | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: GatewaySession | None = None
    received: list[JSON] = field(default_factory=list)
    close_code: int | None = None  # what the client's close frame said
    server_close_code: int | None = None  # set when the fake closed the socket itself

    async def close(self, code: int, reason: bytes) -> None:
        self.server_close_code = code
        await self.ws.close(code=code, message=reason)

    async def send(self, payload: JSON) -> None:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        # One lock keeps frames and the shared deflate stream in the same order.
        async with self.lock:
            if self.ws.closed:
                return
            if self.compressor is None:
                await self.ws.send_str(raw.decode())
            else:
                frame = self.compressor.compress(raw) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(frame)


@dataclass(slots=True)
class GatewaySession:
    """A gateway session; outlives its connection so RESUME can replay what was missed."""

    session_id: str
    intents: int
    seq: int = 0
    history: list[JSON] = field(default_factory=list)
    connection: GatewayConnection | None = None
    resumes: int = 0
    shard: tuple[int, int] = (0, 1)  # (shard id, shard count) from IDENTIFY

    def owns(self, guild_id: int | None) -> bool:
        """Discord's rule: a guild's events go to shard (guild_id >> 22) % count; DMs to shard 0."""
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id


class FakeGateway:
    """Accepts discord.py's WebSocket and sends it events on the fake's behalf."""

    def __init__(self, owner: FakeDiscord) -> None:
        self._owner = owner
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, GatewaySession] = {}

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        compressor = zlib.compressobj() if query.get("compress") == "zlib-stream" else None
        conn = GatewayConnection(ws=ws, query=query, compressor=compressor)
        self.connections.append(conn)
        try:
            hello = {"heartbeat_interval": self._owner.limits.heartbeat_interval_ms}
            await conn.send({"op": OP_HELLO, "d": hello, "s": None, "t": None})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_payload(conn, json.loads(msg.data))
        finally:
            conn.close_code = ws.close_code
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            await self._owner.notify()
        return ws

    async def _on_payload(self, conn: GatewayConnection, payload: JSON) -> None:
        conn.received.append(payload)
        op, data = payload.get("op"), payload.get("d") or {}
        if op == OP_HEARTBEAT:
            await conn.send({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            await self._identify(conn, data)
        elif op == OP_RESUME:
            await self._resume(conn, data)
        elif op == OP_REQUEST_MEMBERS:
            await self._request_members(conn, data)
        await self._owner.notify()

    async def _identify(self, conn: GatewayConnection, data: JSON) -> None:
        if data.get("token") != self._owner.token:
            await conn.close(4004, b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self._owner.approved_intents:
            await conn.close(4014, b"Disallowed intent(s).")
            return
        session = GatewaySession(session_id=secrets.token_hex(16), intents=intents)
        shard = data.get("shard") or [0, 1]
        session.shard = (int(shard[0]), int(shard[1]))
        self.sessions[session.session_id] = session
        session.connection = conn
        conn.session = session
        await self._send(session, "READY", self._ready(session, data))
        if intents & INTENT_GUILDS:
            bot = self._owner.bot_user
            for guild in self._owner.guilds.values():
                if session.owns(guild.id):
                    await self._send(session, "GUILD_CREATE", guild_payload(guild, bot))

    def _ready(self, session: GatewaySession, identify: JSON) -> JSON:
        owner = self._owner
        user = user_payload(owner.bot_user) | {"verified": True, "mfa_enabled": False}
        return {
            "v": 10,
            "user": user,
            "user_settings": {},
            "guilds": [{"id": str(g), "unavailable": True} for g in owner.guilds if session.owns(g)],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": owner.gateway_url,
            "shard": identify.get("shard", [0, 1]),
            "application": {
                "id": str(owner.application_id),
                "flags": application_flags(owner.approved_intents),
            },
            "auth": {},
            "_trace": ['["fake-discord-gateway"]'],
        }

    async def _resume(self, conn: GatewayConnection, data: JSON) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self._owner.token:
            await conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        session.connection = conn
        session.resumes += 1
        conn.session = session
        last_seen = int(data.get("seq") or 0)
        for frame in session.history:
            if frame["s"] > last_seen:
                await conn.send(frame)
        await self._send(session, "RESUMED", {"_trace": ['["fake-discord-gateway"]']})

    async def _request_members(self, conn: GatewayConnection, data: JSON) -> None:
        if conn.session is None:
            return
        guild = self._owner.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        chunk = {
            "guild_id": str(guild.id),
            "members": [member_payload(guild, user) for user in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if "nonce" in data:
            chunk["nonce"] = data["nonce"]
        await self._send(conn.session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _send(self, session: GatewaySession, event: str, data: JSON) -> None:
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.history.append(frame)
        if session.connection is not None:
            await session.connection.send(frame)

    async def dispatch(
        self,
        event: str,
        data: JSON,
        *,
        intent: int = 0,
        content_visible_anyway: bool = True,
    ) -> None:
        """Send an event to every session whose intents cover it.

        Sessions without MESSAGE_CONTENT get message bodies blanked, as Discord does, unless
        `content_visible_anyway` (DMs, mentions of the bot, the bot's own messages).
        """
        guild_id = data.get("guild_id")
        for session in list(self.sessions.values()):
            if intent and not session.intents & intent:
                continue
            if not session.owns(None if guild_id is None else int(guild_id)):
                continue  # another shard's guild (or a DM, which shard 0 gets)
            body = data
            if not content_visible_anyway and not session.intents & INTENT_MESSAGE_CONTENT:
                body = _without_content(data)
            await self._send(session, event, body)

    async def reconnect_all(self) -> None:
        """Ask every client to reconnect (op 7), as Discord does before a restart."""
        for conn in self.live_connections():
            await conn.send({"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    async def drop_all(self, code: int) -> None:
        """Close every connection from the server side with `code`."""
        for conn in self.live_connections():
            await conn.close(code, b"fake-discord drop")

    def live_connections(self) -> list[GatewayConnection]:
        return [c for c in self.connections if not c.ws.closed]

    def identifies(self) -> list[JSON]:
        return [p["d"] for c in self.connections for p in c.received if p.get("op") == OP_IDENTIFY]


def _without_content(data: JSON) -> JSON:
    blank: dict[str, Any] = {"content": "", "embeds": [], "attachments": [], "components": []}
    stripped = data | blank
    stripped.pop("poll", None)
    return stripped
