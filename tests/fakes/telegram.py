"""A fake Telegram Bot API server for tests, driven by the real python-telegram-bot.

A real ``aiohttp.web`` server on 127.0.0.1 answering ``POST /bot{token}/{method}`` (form or
multipart bodies, nested fields JSON-encoded, exactly as python-telegram-bot sends them) and
``GET /file/bot{token}/{path}``. It keeps chats and messages, enforces Telegram's limits
(text/caption length after parsing, HTML parse mode, "message is not modified", photo size
and dimensions, per-chat / per-group / global flood control with scaled-down windows),
records every request with a ``time.monotonic()`` timestamp, injects faults, and feeds
updates (messages, callback queries) to ``getUpdates`` long polls. Telegram Stars payments
(invoices, pre-checkout queries, successful payments, refunds) live in ``telegram_payments``.

Usage::

    async with FakeTelegram(token="123:ABC", time_scale=0.02) as tg:
        app = ApplicationBuilder().token(tg.token).base_url(tg.base_url)
                                  .base_file_url(tg.base_file_url).build()
        alice = tg.user("Alice", "alice")
        tg.user_message(tg.private_chat(alice), alice, "hello")
        sent = await tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.fakes.telegram_media import image_size, png_bytes
from tests.fakes.telegram_payments import StarsPayments
from tests.fakes.telegram_text import (
    EntityParseError,
    ParsedText,
    UnsupportedParseModeError,
    auto_entities,
    parse_text,
)

__all__ = [
    "FakeTelegram",
    "RecordedRequest",
    "StoredFile",
    "StoredMessage",
    "UploadedFile",
    "Violation",
]

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES = 10_000
MAX_PHOTO_ASPECT = 20
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
MAX_CALLBACK_DATA = 64
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Updates Telegram sends when allowed_updates is empty or was never set.
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
# Parameters that are strings in the Bot API: python-telegram-bot sends strings raw and
# everything else JSON-encoded, so only these must not go through json.loads.
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "action",
        "callback_query_id",
        "file_id",
        "url",
        "secret_token",
        "language_code",
        "photo",
        "document",
        "data",
        "inline_message_id",
        "title",
        "description",
        "short_description",
        "name",
        "emoji",
        "ip_address",
        "payload",
        "provider_token",
        "currency",
        "start_parameter",
        "photo_url",
        "pre_checkout_query_id",
        "error_message",
        "telegram_payment_charge_id",
    }
)
_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One multipart file part of a request."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One Bot API call as the fake saw it: arrival time, decoded params, answer."""

    at: float  # time.monotonic() when the request arrived; the clock the limits use
    method: str  # canonical Bot API name ("sendMessage") when known, else as sent
    params: JSON
    files: dict[str, UploadedFile]
    status: int
    response: JSON

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.status == 200

    @property
    def result(self) -> Any:
        """The ``result`` of a successful call (None for failed ones)."""
        return self.response.get("result")

    @property
    def description(self) -> str | None:
        """The error description of a failed call."""
        return self.response.get("description")


@dataclass(frozen=True, slots=True)
class Violation:
    """A request refused by flood control."""

    at: float
    method: str
    chat_id: int
    limit: str  # "per_chat", "group" or "global"
    retry_after: float


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the fake can serve through getFile and the file URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None


@dataclass(slots=True)
class StoredMessage:
    """A message as it is now in a chat: mutable, because bots edit and delete."""

    chat_id: int
    message_id: int
    sender: JSON
    from_bot: bool
    date: int
    thread_id: int | None = None
    text: str | None = None
    entities: tuple[JSON, ...] = ()
    caption: str | None = None
    caption_entities: tuple[JSON, ...] = ()
    reply_markup: JSON | None = None
    reply_to: int | None = None
    photo: list[JSON] | None = None
    document: JSON | None = None
    media_group_id: str | None = None  # the album a photo or document belongs to
    edit_date: int | None = None
    deleted: bool = False
    history: list[str] = field(default_factory=list)  # earlier texts, oldest first
    extra: JSON = field(default_factory=dict)  # other fields: invoice, successful_payment, ...


class ApiError(Exception):
    """An error answer of the Bot API, raised inside handlers."""

    def __init__(self, status: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSON:
        """The JSON body Telegram answers with."""
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": _seconds(self.retry_after)}
        return body


def _bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def _seconds(value: float) -> int | float:
    # Telegram sends whole seconds; fractions are only for tests that configure them.
    return int(value) if float(value).is_integer() else value


@dataclass(slots=True)
class _Call:
    at: float
    params: JSON
    files: dict[str, UploadedFile]


Handler = Callable[[_Call], Awaitable[Any]]


class FakeTelegram(StarsPayments):
    """A fake Bot API server; see the module docstring. Use with ``async with``."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        bot_username: str = "minitoolai_bot",
        bot_name: str = "MiniToolAI",
        time_scale: float = 1.0,
        per_chat_interval: float | None = None,
        group_limit: int | None = 20,
        group_window: float | None = None,
        global_per_second: int | None = 30,
        global_window: float | None = None,
        retry_after_seconds: float = 1,
        drafts_supported: bool = True,
        pre_checkout_timeout: float = 10.0,
    ) -> None:
        if retry_after_seconds <= 0:
            # python-telegram-bot ignores a zero retry_after and raises a plain NetworkError.
            raise ValueError("retry_after_seconds must be positive")
        self.token = token
        self.bot_user: JSON = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self.per_chat_interval = 1.0 * time_scale if per_chat_interval is None else per_chat_interval
        self.group_limit = group_limit
        self.group_window = 60.0 * time_scale if group_window is None else group_window
        self.global_limit = global_per_second
        self.global_window = 1.0 * time_scale if global_window is None else global_window
        self.retry_after_seconds = retry_after_seconds
        self.drafts_supported = drafts_supported

        self.requests: list[RecordedRequest] = []
        self.violations: list[Violation] = []
        self.drafts: dict[tuple[int, int], str] = {}
        self.callback_answers: dict[str, JSON] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        # language_code ("" = every other client) -> the bot's description / short description
        self.descriptions: dict[str, str] = {}
        self.short_descriptions: dict[str, str] = {}
        self.webhook_url: str | None = None

        self._chats: dict[int, JSON] = {}
        self._users: dict[int, JSON] = {}
        self._statuses: dict[tuple[int, int], str] = {}  # (chat, user) -> "creator" / "administrator"
        self._topics: dict[int, dict[int, str]] = {}
        self._messages: dict[tuple[int, int], StoredMessage] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._callback_queries: set[str] = set()
        self._updates: list[JSON] = []
        self._allowed_updates: list[str] = []
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(700_000_001)
        self._user_ids = itertools.count(10_001)
        self._faults: dict[str, collections.deque[ApiError]] = {}
        self._last_post: dict[int, float] = {}
        self._group_posts: dict[int, collections.deque[float]] = {}
        self._global_posts: collections.deque[float] = collections.deque()

        self._stalls: list[tuple[str, Callable[[JSON], bool]]] = []
        self._unstalled = asyncio.Event()  # set when the fake closes: held calls end
        self.stalled: list[tuple[str, JSON]] = []  # (method, params) of calls held by stall()
        self._init_payments(pre_checkout_timeout)

        self._changed = asyncio.Condition()
        self._poll_waiters: set[asyncio.Event] = set()
        self._poll_generation = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._methods: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler) for name, handler in self._handlers().items()
        }

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=MAX_DOCUMENT_BYTES + 8 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        # handler_cancellation: a long poll whose client went away (the updater stopping)
        # must end with it instead of holding the server open until its timeout.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
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
        self._closing = True
        self._unstalled.set()
        self._wake_pollers()
        if self._runner is not None:
            await self._runner.cleanup()

    async def go_offline(self) -> None:
        """A network outage: stop listening (connections are refused) and drop every open
        connection, long polls included. :meth:`go_online` comes back on the same port."""
        assert self._runner is not None and self._runner.server is not None
        for site in list(self._runner.sites):
            await site.stop()
        await self._runner.server.shutdown(0.05)

    async def go_online(self) -> None:
        """Listen again on the same port after :meth:`go_offline`."""
        assert self._runner is not None
        await web.TCPSite(self._runner, "127.0.0.1", self._port).start()

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``; the token is appended by the library."""
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``."""
        return f"http://127.0.0.1:{self._port}/file/bot"

    # ------------------------------------------------------------------ test-facing helpers

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error instead."""
        queue = self._faults.setdefault(method.lower(), collections.deque())
        queue.extend(ApiError(status, description, retry_after) for _ in range(times))

    def calls(self, method: str) -> list[RecordedRequest]:
        """Every recorded call of ``method`` (successful or not), in arrival order."""
        return [request for request in self.requests if request.method == method]

    async def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - tests read best with the deadline inline
        *,
        start: int = 0,
    ) -> RecordedRequest:
        """The first recorded request from index ``start`` on matching ``predicate``,
        waiting (on a condition notified by every request) until one arrives."""

        def first_match() -> RecordedRequest | None:
            return next((r for r in self.requests[start:] if predicate(r)), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: first_match() is not None)
            found = first_match()
            assert found is not None
            return found

    async def wait_until_polling(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until a getUpdates long poll is waiting for updates."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(self._poll_waiters))

    def messages(self, chat_id: int, thread_id: int | None = None) -> list[StoredMessage]:
        """Messages now in a chat (deleted ones left out) in order; ``thread_id`` None means
        every thread."""
        found = [
            message
            for (chat, _), message in self._messages.items()
            if chat == chat_id and not message.deleted
            if thread_id is None or message.thread_id == thread_id
        ]
        return sorted(found, key=lambda message: message.message_id)

    def messages_in(
        self, chat_id: int, thread_id: int | None = None, *, from_bot: bool | None = None
    ) -> list[str]:
        """Current texts (or captions) of a chat's messages in order, optionally only the
        bot's (``from_bot=True``) or only the users' (``False``)."""
        return [
            message.text if message.text is not None else (message.caption or "")
            for message in self.messages(chat_id, thread_id)
            if from_bot is None or message.from_bot == from_bot
        ]

    def message(self, chat_id: int, message_id: int) -> StoredMessage:
        """One stored message (KeyError when unknown)."""
        return self._messages[(chat_id, message_id)]

    def add_file(
        self,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        kind: str = "documents",
    ) -> StoredFile:
        """Register bytes that getFile and the file URL will serve."""
        number = next(self._ids)
        suffix = f"_{file_name}" if file_name else ""
        stored = StoredFile(
            file_id=f"FILE-{number}-{len(data)}",
            file_unique_id=f"U{number}",
            file_path=f"{kind}/file_{number}{suffix}",
            data=data,
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    # chats and users

    def user(self, first_name: str, username: str | None = None, *, language_code: str | None = None) -> JSON:
        """A new (human) user; ``language_code`` is their app's language, as Telegram sends it."""
        user: JSON = {"id": next(self._user_ids), "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user["id"]] = user
        return user

    def make_admin(self, chat: Mapping[str, Any], user: Mapping[str, Any], *, owner: bool = False) -> None:
        """Make ``user`` an administrator (or the owner) of a group, as getChatMember reports."""
        self._statuses[(int(chat["id"]), int(user["id"]))] = "creator" if owner else "administrator"

    def private_chat(self, user: Mapping[str, Any]) -> JSON:
        """The private chat between ``user`` and the bot (its id is the user's id)."""
        chat: JSON = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        return self._register_chat(chat)

    def group(self, title: str) -> JSON:
        """A basic group."""
        return self._register_chat({"id": -(4_000_000 + next(self._ids)), "type": "group", "title": title})

    def supergroup(self, title: str) -> JSON:
        """A supergroup without topics."""
        return self._register_chat(
            {"id": -(1_000_000_000_000 + next(self._ids)), "type": "supergroup", "title": title}
        )

    def forum(self, title: str) -> JSON:
        """A supergroup with topics enabled."""
        chat = self.supergroup(title)
        chat["is_forum"] = True
        self._topics[chat["id"]] = {}
        return chat

    def create_topic(self, chat: Mapping[str, Any], name: str) -> int:
        """Open a topic in a forum; returns its ``message_thread_id``."""
        chat_id = int(chat["id"])
        thread_id = next(self._message_ids[chat_id])
        self._topics[chat_id][thread_id] = name
        return thread_id

    # updates

    def user_message(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any],
        text: str | None = None,
        *,
        reply_to: Mapping[str, Any] | int | None = None,
        thread_id: int | None = None,
        photo: bytes | None = None,
        document: bytes | None = None,
        document_name: str = "file.bin",
        caption: str | None = None,
        entities: list[JSON] | None = None,
        media_group_id: str | None = None,
    ) -> JSON:
        """A user writes in a chat; queued as an update and returned as the message dict.

        Mentions (``@name``) and commands (``/cmd``) get their entities unless ``entities``
        is given, as Telegram adds them for users.
        """
        chat_id = int(chat["id"])
        if thread_id is not None and chat_id in self._topics:
            self._topics[chat_id].setdefault(thread_id, f"topic {thread_id}")
        stored = StoredMessage(
            chat_id=chat_id,
            message_id=next(self._message_ids[chat_id]),
            sender=dict(user),
            from_bot=False,
            date=int(time.time()),
            thread_id=thread_id,
            reply_to=_message_id(reply_to),
            media_group_id=media_group_id,
        )
        if text is not None:
            stored.text = text
            stored.entities = tuple(entities if entities is not None else auto_entities(text))
        if caption is not None:
            stored.caption = caption
            stored.caption_entities = tuple(auto_entities(caption))
        if photo is not None:
            stored.photo = self._photo_sizes(self.add_file(photo, kind="photos"), photo)
        if document is not None:
            added = self.add_file(document, file_name=document_name)
            stored.document = _document_json(added)
        self._messages[(chat_id, stored.message_id)] = stored
        message = self._message_json(stored)
        self._push_update({"message": message})
        return message

    def user_album(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any],
        photos: list[bytes],
        *,
        caption: str | None = None,
        documents: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    ) -> list[JSON]:
        """An album: several photos (and/or documents) sent together, as Telegram delivers it: one
        message each, sharing a ``media_group_id``, the caption on the first."""
        group = str(next(self._ids) * 7919)
        sent = []
        for n, photo in enumerate(photos):
            sent.append(
                self.user_message(
                    chat, user, photo=photo, caption=caption if n == 0 else None, media_group_id=group
                )
            )
        for name, data in documents:
            first = not sent
            sent.append(
                self.user_message(
                    chat,
                    user,
                    document=data,
                    document_name=name,
                    caption=caption if first else None,
                    media_group_id=group,
                )
            )
        return sent

    def callback_query(
        self, user: Mapping[str, Any], message: Mapping[str, Any] | tuple[int, int], data: str
    ) -> JSON:
        """A user presses an inline button with ``data`` under ``message`` (a message dict or
        ``(chat_id, message_id)``); returns the callback query dict."""
        if isinstance(message, tuple):
            chat_id, message_id = message
        else:
            chat_id, message_id = int(message["chat"]["id"]), int(message["message_id"])
        stored = self._messages[(chat_id, message_id)]
        query_id = str(next(self._ids) * 1_000_003)
        self._callback_queries.add(query_id)
        query: JSON = {
            "id": query_id,
            "from": dict(user),
            "message": self._message_json(stored),
            "chat_instance": str(chat_id * 7),
            "data": data,
        }
        self._push_update({"callback_query": query})
        return query

    def repeat_update(self, update: JSON) -> JSON:
        """Deliver an update's content again under a new ``update_id``, as Telegram does when it
        never saw the first delivery confirmed (a bot killed before its next poll, a webhook retry
        to another worker)."""
        return self._push_update({k: v for k, v in update.items() if k != "update_id"})

    def stall(self, method: str, predicate: Callable[[JSON], bool] = lambda params: True) -> None:
        """Hold every later call of ``method`` whose params match, unanswered until its client goes
        away or the fake closes (then a 500): a server that received the request and never answered."""
        self._stalls.append((method.lower(), predicate))

    def unstall(self) -> None:
        """Later calls go through again (calls already held stay held)."""
        self._stalls.clear()

    async def wait_for_stalled(self, method: str, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """The params of the first call of ``method`` held by :meth:`stall`, once one is."""

        def first() -> JSON | None:
            return next((params for name, params in self.stalled if name == method), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: first() is not None)
        found = first()
        assert found is not None
        return found

    async def _hold_if_stalled(self, method: str, params: JSON) -> None:
        if not any(name == method.lower() and match(params) for name, match in self._stalls):
            return
        async with self._changed:
            self.stalled.append((method, params))
            self._changed.notify_all()
        await self._unstalled.wait()  # set only when the fake closes
        raise ApiError(500, "Internal Server Error: the fake Telegram is closing")

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_method(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        params, files = await _decode_request(request)
        raw_method = request.match_info["method"]
        canonical, handler = self._methods.get(raw_method.lower(), (raw_method, None))
        try:
            await self._hold_if_stalled(canonical, params)
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            fault = self._take_fault(canonical)
            if fault is not None:
                raise fault
            if handler is None:
                raise ApiError(404, "Not Found")
            body: JSON = {"ok": True, "result": await handler(_Call(at, params, files))}
            status = 200
        except ApiError as error:
            body, status = error.body(), error.status
        await self._record(RecordedRequest(at, canonical, params, files, status, body))
        return web.Response(text=json.dumps(body), status=status, content_type="application/json")

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["file_path"])
        if request.match_info["token"] != self.token or stored is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _record(self, recorded: RecordedRequest) -> None:
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()

    def _take_fault(self, method: str) -> ApiError | None:
        queue = self._faults.get(method.lower())
        return queue.popleft() if queue else None

    def _handlers(self) -> dict[str, Handler]:
        return {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "sendMessageDraft": self._send_message_draft,
            "sendChatAction": self._send_chat_action,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._set_my_description,
            "getMyDescription": self._get_my_description,
            "setMyShortDescription": self._set_my_short_description,
            "getMyShortDescription": self._get_my_short_description,
            "answerCallbackQuery": self._answer_callback_query,
            "deleteMessage": self._delete_message,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            **self._payment_handlers(),
        }

    # ------------------------------------------------------------------ methods: bot & updates

    async def _true(self, call: _Call) -> bool:
        return True

    async def _get_me(self, call: _Call) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _set_webhook(self, call: _Call) -> bool:
        self.webhook_url = str(call.params.get("url", "")) or None
        return True

    async def _delete_webhook(self, call: _Call) -> bool:
        self.webhook_url = None
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, call: _Call) -> JSON:
        return {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _get_updates(self, call: _Call) -> list[JSON]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(call.params.get("offset") or 0)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if call.params.get("allowed_updates") is not None:
            self._allowed_updates = list(call.params["allowed_updates"])
        limit = min(max(int(call.params.get("limit") or 100), 1), 100)
        timeout = float(call.params.get("timeout") or 0)
        # A newer long poll ends an older one with 409, as on the real server.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()
        await self._wait_for_updates(timeout, generation)
        if generation != self._poll_generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        return self._deliverable()[:limit]

    async def _wait_for_updates(self, seconds: float, generation: int) -> None:
        wake = asyncio.Event()
        self._poll_waiters.add(wake)
        async with self._changed:
            self._changed.notify_all()  # for wait_until_polling
        try:
            async with asyncio.timeout(seconds):
                while not (self._deliverable() or self._closing or generation != self._poll_generation):
                    wake.clear()
                    await wake.wait()
        except TimeoutError:
            pass
        finally:
            self._poll_waiters.discard(wake)

    def _deliverable(self) -> list[JSON]:
        allowed = set(self._allowed_updates)
        kept = []
        for update in self._updates:
            kind = next(key for key in update if key != "update_id")
            if kind in allowed or (not allowed and kind not in _DEFAULT_EXCLUDED_UPDATES):
                kept.append(update)
        return kept

    def _push_update(self, payload: JSON) -> JSON:
        update = {"update_id": next(self._update_ids), **payload}
        self._updates.append(update)
        self._wake_pollers()
        return update

    def _wake_pollers(self) -> None:
        for wake in self._poll_waiters:
            wake.set()

    # ------------------------------------------------------------------ methods: messages

    async def _send_message(self, call: _Call) -> JSON:
        chat = self._chat(call.params)
        reply_to = self._reply_target(chat, call.params)
        thread_id = self._thread(chat, call.params, reply_to)
        parsed = _parse(call.params, "text", "entities")
        _check_text(parsed)
        markup = _reply_markup(call.params)
        self._check_flood(call, "sendMessage", chat)
        stored = self._new_bot_message(chat, thread_id, reply_to)
        stored.text, stored.entities, stored.reply_markup = parsed.text, parsed.entities, markup
        return self._message_json(stored)

    async def _edit_message_text(self, call: _Call) -> JSON:
        stored = self._editable(call.params)
        if stored.text is None:
            raise _bad_request("there is no text in the message to edit")
        parsed = _parse(call.params, "text", "entities")
        _check_text(parsed)
        markup = _reply_markup(call.params)
        unchanged = (parsed.text, parsed.entities, markup) == (
            stored.text,
            stored.entities,
            stored.reply_markup,
        )
        if unchanged:
            raise ApiError(400, NOT_MODIFIED)
        self._check_flood(call, "editMessageText", self._chats[stored.chat_id])
        stored.history.append(stored.text)
        stored.text, stored.entities, stored.reply_markup = parsed.text, parsed.entities, markup
        stored.edit_date = int(time.time())
        return self._message_json(stored)

    async def _edit_message_reply_markup(self, call: _Call) -> JSON:
        stored = self._editable(call.params)
        markup = _reply_markup(call.params)
        if markup == stored.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        self._check_flood(call, "editMessageReplyMarkup", self._chats[stored.chat_id])
        stored.reply_markup = markup
        stored.edit_date = int(time.time())
        return self._message_json(stored)

    async def _send_message_draft(self, call: _Call) -> bool:
        if not self.drafts_supported:
            # What a Bot API server without the method (e.g. an older local one) answers.
            raise ApiError(404, "Not Found")
        chat = self._chat(call.params)
        if chat["type"] != "private":
            raise _bad_request("TEXTDRAFT_PEER_INVALID")
        draft_id = int(call.params.get("draft_id") or 0)
        if draft_id == 0:
            raise _bad_request("draft_id must be non-zero")
        self._thread(chat, call.params, None)
        parsed = _parse(call.params, "text", "entities")
        if len(parsed.text) > MAX_TEXT:
            raise _bad_request("message is too long")
        self.drafts[(int(chat["id"]), draft_id)] = parsed.text
        return True

    async def _send_chat_action(self, call: _Call) -> bool:
        chat = self._chat(call.params)
        self._thread(chat, call.params, None)
        if call.params.get("action") not in CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    async def _delete_message(self, call: _Call) -> bool:
        stored = self._find_message(call.params, "message to delete not found")
        stored.deleted = True
        return True

    async def _answer_callback_query(self, call: _Call) -> bool:
        query_id = str(call.params.get("callback_query_id", ""))
        if query_id not in self._callback_queries or query_id in self.callback_answers:
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        self.callback_answers[query_id] = dict(call.params)
        return True

    # ------------------------------------------------------------------ methods: members

    async def _get_chat_member(self, call: _Call) -> JSON:
        chat = self._chat(call.params)
        user_id = int(call.params.get("user_id") or 0)
        user = self._users.get(user_id)
        if user is None:
            raise _bad_request("PARTICIPANT_ID_INVALID")
        if chat["type"] == "private":
            status = "member" if user_id != int(chat["id"]) else "creator"
        else:
            status = self._statuses.get((int(chat["id"]), user_id), "member")
        return _chat_member(user, status)

    async def _get_chat_administrators(self, call: _Call) -> list[JSON]:
        chat = self._chat(call.params)
        if chat["type"] == "private":
            raise _bad_request("there are no administrators in the private chat")
        return [
            _chat_member(self._users[user_id], status)
            for (chat_id, user_id), status in self._statuses.items()
            if chat_id == int(chat["id"])
        ]

    # ------------------------------------------------------------------ methods: files

    async def _send_photo(self, call: _Call) -> JSON:
        chat = self._chat(call.params)
        reply_to = self._reply_target(chat, call.params)
        thread_id = self._thread(chat, call.params, reply_to)
        data = self._input_file(call, "photo")
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad_request("file is too big")
        _check_photo_dimensions(data)
        caption = _parse(call.params, "caption", "caption_entities")
        _check_caption(caption)
        markup = _reply_markup(call.params)
        self._check_flood(call, "sendPhoto", chat)
        stored = self._new_bot_message(chat, thread_id, reply_to)
        stored.photo = self._photo_sizes(self.add_file(data, kind="photos"), data)
        stored.reply_markup = markup
        _set_caption(stored, caption)
        return self._message_json(stored)

    async def _send_document(self, call: _Call) -> JSON:
        chat = self._chat(call.params)
        reply_to = self._reply_target(chat, call.params)
        thread_id = self._thread(chat, call.params, reply_to)
        data = self._input_file(call, "document")
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        caption = _parse(call.params, "caption", "caption_entities")
        _check_caption(caption)
        markup = _reply_markup(call.params)
        self._check_flood(call, "sendDocument", chat)
        upload = call.files.get("document")
        stored = self._new_bot_message(chat, thread_id, reply_to)
        added = self.add_file(
            data,
            file_name=upload.filename if upload else None,
            mime_type=upload.content_type if upload else None,
        )
        stored.document = _document_json(added)
        stored.reply_markup = markup
        _set_caption(stored, caption)
        return self._message_json(stored)

    async def _get_file(self, call: _Call) -> JSON:
        stored = self._files.get(str(call.params.get("file_id", "")))
        if stored is None:
            raise _bad_request("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise _bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _input_file(self, call: _Call, name: str) -> bytes:
        upload = call.files.get(name)
        if upload is not None:
            return upload.data
        reference = call.params.get(name)
        if isinstance(reference, str) and reference in self._files:
            return self._files[reference].data
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _photo_sizes(self, stored: StoredFile, data: bytes) -> list[JSON]:
        width, height = image_size(data) or (0, 0)
        original = _photo_size(stored, width, height)
        if max(width, height) <= 90:
            return [original]
        # Telegram lists smaller renditions first; a distinct small picture lets tests catch
        # code that takes photo[0] instead of the largest photo[-1].
        scale = 90 / max(width, height)
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        thumbnail = png_bytes(small_w, small_h)
        return [
            _photo_size(self.add_file(thumbnail, kind="photos"), small_w, small_h),
            original,
        ]

    # ------------------------------------------------------------------ methods: commands

    async def _set_my_commands(self, call: _Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not _COMMAND_NAME_RE.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[_command_key(call.params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, call: _Call) -> list[JSON]:
        return self.commands.get(_command_key(call.params), [])

    async def _delete_my_commands(self, call: _Call) -> bool:
        self.commands.pop(_command_key(call.params), None)
        return True

    async def _set_my_description(self, call: _Call) -> bool:
        text = str(call.params.get("description") or "")
        if len(text) > 512:
            raise _bad_request("BOT_DESCRIPTION_INVALID")
        _set_or_clear(self.descriptions, str(call.params.get("language_code") or ""), text)
        return True

    async def _get_my_description(self, call: _Call) -> JSON:
        code = str(call.params.get("language_code") or "")
        return {"description": self.descriptions.get(code, self.descriptions.get("", ""))}

    async def _set_my_short_description(self, call: _Call) -> bool:
        text = str(call.params.get("short_description") or "")
        if len(text) > 120:
            raise _bad_request("BOT_SHORT_DESCRIPTION_INVALID")
        _set_or_clear(self.short_descriptions, str(call.params.get("language_code") or ""), text)
        return True

    async def _get_my_short_description(self, call: _Call) -> JSON:
        code = str(call.params.get("language_code") or "")
        return {"short_description": self.short_descriptions.get(code, self.short_descriptions.get("", ""))}

    # ------------------------------------------------------------------ state helpers

    def _register_chat(self, chat: JSON) -> JSON:
        self._chats[int(chat["id"])] = chat
        self._message_ids.setdefault(int(chat["id"]), itertools.count(1))
        return chat

    def _chat(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self._chats:
            return self._chats[chat_id]
        if isinstance(chat_id, str):
            for chat in self._chats.values():
                if f"@{chat.get('username', '')}".lower() == chat_id.lower():
                    return chat
        if isinstance(chat_id, int) and chat_id in self._users:
            # A person who never opened a private chat with the bot: bots may not write first.
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        raise _bad_request("chat not found")

    def _thread(self, chat: JSON, params: JSON, reply_to: StoredMessage | None) -> int | None:
        thread_id = params.get("message_thread_id")
        if thread_id is None:
            # A reply to a topic message lands in that topic.
            return reply_to.thread_id if reply_to is not None else None
        if int(thread_id) not in self._topics.get(int(chat["id"]), {}):
            raise _bad_request("message thread not found")
        return int(thread_id)

    def _reply_target(self, chat: JSON, params: JSON) -> StoredMessage | None:
        reply = params.get("reply_parameters") or {}
        message_id = reply.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        stored = self._messages.get((int(chat["id"]), int(message_id)))
        if stored is None or stored.deleted:
            if reply.get("allow_sending_without_reply"):
                return None
            raise _bad_request("message to be replied not found")
        return stored

    def _find_message(self, params: JSON, missing: str) -> StoredMessage:
        if "inline_message_id" in params:
            raise _bad_request("the fake Telegram does not support inline messages")
        chat = self._chat(params)
        stored = self._messages.get((int(chat["id"]), int(params.get("message_id") or 0)))
        if stored is None or stored.deleted:
            raise _bad_request(missing)
        return stored

    def _editable(self, params: JSON) -> StoredMessage:
        stored = self._find_message(params, "message to edit not found")
        if not stored.from_bot:
            raise _bad_request("message can't be edited")
        return stored

    def _new_bot_message(
        self, chat: JSON, thread_id: int | None, reply_to: StoredMessage | None
    ) -> StoredMessage:
        chat_id = int(chat["id"])
        stored = StoredMessage(
            chat_id=chat_id,
            message_id=next(self._message_ids[chat_id]),
            sender=dict(self.bot_user),
            from_bot=True,
            date=int(time.time()),
            thread_id=thread_id,
            reply_to=reply_to.message_id if reply_to is not None else None,
        )
        self._messages[(chat_id, stored.message_id)] = stored
        return stored

    def _message_json(self, stored: StoredMessage, *, nested: bool = False) -> JSON:
        message: JSON = {
            "message_id": stored.message_id,
            "date": stored.date,
            "chat": dict(self._chats[stored.chat_id]),
            "from": dict(stored.sender),
        }
        if stored.thread_id is not None:
            message["message_thread_id"] = stored.thread_id
            message["is_topic_message"] = True
        for key, value in _optional_fields(stored):
            message[key] = value
        target = self._messages.get((stored.chat_id, stored.reply_to or 0))
        if target is not None and not nested:
            message["reply_to_message"] = self._message_json(target, nested=True)
        return message

    # ------------------------------------------------------------------ flood control

    def _check_flood(self, call: _Call, method: str, chat: JSON) -> None:
        """Refuse with 429 when a budget is spent; otherwise charge every budget."""
        chat_id = int(chat["id"])
        now = call.at
        in_group = chat["type"] in {"group", "supergroup"}
        group_posts = self._group_posts.setdefault(chat_id, collections.deque())
        _expire(group_posts, now - self.group_window)
        _expire(self._global_posts, now - self.global_window)
        last = self._last_post.get(chat_id)
        if last is not None and now - last < self.per_chat_interval:
            self._refuse(now, method, chat_id, "per_chat")
        if in_group and self.group_limit is not None and len(group_posts) >= self.group_limit:
            self._refuse(now, method, chat_id, "group")
        if self.global_limit is not None and len(self._global_posts) >= self.global_limit:
            self._refuse(now, method, chat_id, "global")
        self._last_post[chat_id] = now
        if in_group:
            group_posts.append(now)
        self._global_posts.append(now)

    def _refuse(self, now: float, method: str, chat_id: int, limit: str) -> None:
        retry_after = self.retry_after_seconds
        self.violations.append(Violation(now, method, chat_id, limit, retry_after))
        logger.debug("flood control: %s in chat %s (%s)", method, chat_id, limit)
        raise ApiError(429, f"Too Many Requests: retry after {math.ceil(retry_after)}", retry_after)


# ---------------------------------------------------------------------- module helpers


async def _decode_request(request: web.Request) -> tuple[JSON, dict[str, UploadedFile]]:
    """Params and file parts of a Bot API request, whatever its encoding."""
    params: JSON = {key: _decode_value(key, value) for key, value in request.query.items()}
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
        return params, files
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            files[key] = UploadedFile(value.filename, value.content_type, value.file.read())
        elif isinstance(value, str):
            params[key] = _decode_value(key, value)
    return params, files


def _decode_value(name: str, raw: str) -> Any:
    if name in _STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _message_id(reference: Mapping[str, Any] | int | None) -> int | None:
    if reference is None or isinstance(reference, int):
        return reference
    return int(reference["message_id"])


def _parse(params: JSON, text_key: str, entities_key: str) -> ParsedText:
    entities = params.get(entities_key)
    try:
        return parse_text(
            str(params.get(text_key) or ""),
            params.get("parse_mode"),
            entities if isinstance(entities, list) else None,
        )
    except EntityParseError as error:
        raise _bad_request(f"can't parse entities: {error}") from error
    except UnsupportedParseModeError as error:
        raise _bad_request(f"unsupported parse_mode: {error}") from error


def _check_text(parsed: ParsedText) -> None:
    if not parsed.text:
        raise _bad_request("message text is empty")
    if len(parsed.text) > MAX_TEXT:
        raise _bad_request("message is too long")


def _check_caption(parsed: ParsedText) -> None:
    if len(parsed.text) > MAX_CAPTION:
        raise _bad_request("message caption is too long")


def _set_caption(stored: StoredMessage, caption: ParsedText) -> None:
    if caption.text:
        stored.caption, stored.caption_entities = caption.text, caption.entities


def _reply_markup(params: JSON) -> JSON | None:
    markup = params.get("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise _bad_request("BUTTON_DATA_INVALID")
    return markup


def _chat_member(user: JSON, status: str) -> JSON:
    """A ChatMember object with the fields the Bot API always sends for its status."""
    member: JSON = {"status": status, "user": dict(user)}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        rights = [
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
            "can_pin_messages",
            "can_manage_topics",
        ]
        member.update({right: True for right in rights})
        member.update({"can_be_edited": False, "is_anonymous": False, "can_promote_members": False})
    return member


def _check_photo_dimensions(data: bytes) -> None:
    size = image_size(data)
    if size is None:
        raise _bad_request("IMAGE_PROCESS_FAILED")
    width, height = size
    too_big = width + height > MAX_PHOTO_SIDES
    too_thin = max(width, height) > MAX_PHOTO_ASPECT * max(1, min(width, height))
    if too_big or too_thin or min(width, height) == 0:
        raise _bad_request("PHOTO_INVALID_DIMENSIONS")


def _photo_size(stored: StoredFile, width: int, height: int) -> JSON:
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "width": width,
        "height": height,
        "file_size": len(stored.data),
    }


def _document_json(stored: StoredFile) -> JSON:
    document: JSON = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
    }
    if stored.file_name:
        document["file_name"] = stored.file_name
    if stored.mime_type:
        document["mime_type"] = stored.mime_type
    return document


def _optional_fields(stored: StoredMessage) -> Iterator[tuple[str, Any]]:
    if stored.text is not None:
        yield "text", stored.text
    if stored.entities:
        yield "entities", list(stored.entities)
    if stored.caption is not None:
        yield "caption", stored.caption
    if stored.caption_entities:
        yield "caption_entities", list(stored.caption_entities)
    if stored.photo is not None:
        yield "photo", stored.photo
    if stored.document is not None:
        yield "document", stored.document
    if stored.media_group_id is not None:
        yield "media_group_id", stored.media_group_id
    if stored.reply_markup is not None:
        yield "reply_markup", stored.reply_markup
    if stored.edit_date is not None:
        yield "edit_date", stored.edit_date
    yield from stored.extra.items()


def _set_or_clear(table: dict[str, str], code: str, text: str) -> None:
    """An empty text removes the language's own one (Telegram's behaviour)."""
    if text:
        table[code] = text
    else:
        table.pop(code, None)


def _command_key(params: JSON) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


def _expire(window: collections.deque[float], before: float) -> None:
    while window and window[0] <= before:
        window.popleft()
