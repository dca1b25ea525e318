"""The Telegram adapter's lifecycle: build the Application, serve updates until stop, shut down.

python-telegram-bot runs inside the bot's own event loop through its manual lifecycle
(``async with application``, ``start()``, ``updater.start_polling()``), next to the other
adapters. Long polling by default; with ``webhook_url`` set, an aiohttp server receives the
updates instead, refusing (403) any request without Telegram's secret-token header, so several
workers can share one bot behind a load balancer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import BotCommand, Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, TypeHandler

from adapters.telegram.access import ACCESS_COMMANDS
from adapters.telegram.handlers import COMMANDS, Handlers
from adapters.telegram.health import ReportingRequest
from adapters.telegram.images import TelegramImageSurfaces
from adapters.telegram.messages import PLATFORM
from adapters.telegram.pacing import BotWideLimiter, ChatPacing
from adapters.telegram.payments import CheckoutFirstQueue, PaymentHandlers
from adapters.telegram.private import TelegramPrivate
from adapters.telegram.surface import DraftSupport
from adapters.telegram.transport import AiohttpRequest
from bot.core import Core
from bot.errors import ConfigError, PlatformUnavailable
from bot.i18n import N_, _, using
from bot.i18n.catalog import LANGUAGES, default_language
from bot.ops import context as ops_context
from bot.ports import SharedLimits

__all__ = ["SECRET_HEADER", "TelegramAdapter", "TelegramConfig"]

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]
# Loggers that write Telegram URLs, which carry the bot token: httpx at INFO (every request),
# python-telegram-bot at DEBUG ("Set Bot API URL ..."). Kept above those levels unless the owner
# configured them; the composition root's log filter scrubs tokens too, this is the second lock.
_URL_LOGGERS = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "telegram": logging.INFO}


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """What the adapter needs from the settings. ``pace_scale`` < 1 only for tests against a
    fake server whose limits are scaled down the same way."""

    token: str
    api_base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_listen: str = "0.0.0.0:8443"
    # With several workers: True for the one process that registers the webhook (None: always).
    claim_webhook: Callable[[], Awaitable[bool]] | None = None
    # With REDIS_URL: budgets shared by every process of this bot (None: per process).
    shared_limits: SharedLimits | None = None
    pace_scale: float = 1.0
    poll_timeout: float = 30.0
    max_concurrent_updates: int = 256  # python-telegram-bot's default for concurrent updates

    def __repr__(self) -> str:
        # The token and the secret must never reach a log through a repr.
        return f"TelegramConfig(api_base_url={self.api_base_url!r}, webhook_url={self.webhook_url!r})"


class TelegramAdapter:
    name = "telegram"

    def __init__(self, core: Core, config: TelegramConfig) -> None:
        # RetryAfter.retry_after as a timedelta, without PTB's deprecation warning.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self._core = core
        self._config = config
        self._pacing = ChatPacing(config.pace_scale)
        self._drafts = DraftSupport()
        for name, level in _URL_LOGGERS.items():
            url_logger = logging.getLogger(name)
            if url_logger.level == logging.NOTSET:
                url_logger.setLevel(level)

    async def run(self, stop: asyncio.Event) -> None:
        link = self._core.health.platform(self.name)  # readiness: Telegram answers our requests
        requests = (ReportingRequest(link), ReportingRequest(link, 1))
        app = self._build(*requests)
        images = TelegramImageSurfaces(app.bot, self._pacing)
        handlers = Handlers(self._core, self._pacing, self._drafts, images)
        payments = PaymentHandlers(self._core, self._pacing)
        payments.register(app)  # first: its /start topup and pack buttons come before the general ones
        handlers.register(app)
        # A request id per update, first of all (one handler runs per group: the gate has -1, the
        # language -2).
        app.add_handler(TypeHandler(Update, _begin_request), group=-3)
        await self._sign_in(app, requests)
        async with app:
            logger.info("Telegram: signed in as @%s", app.bot.username)
            await self._set_commands(app, payments.commands)
            # Connected: image jobs a previous run left unfinished can post here again.
            self._core.images.register_platform(PLATFORM, images)
            self._core.credits.alerts.register(PLATFORM, TelegramPrivate(app.bot, self._pacing))
            resumed = await self._core.images.resume(PLATFORM)
            if resumed:
                logger.info("Telegram: resumed %d unfinished image jobs", resumed)
            await app.start()
            try:
                if self._config.webhook_url:
                    await self._serve_webhook(app, stop)
                else:
                    await self._poll(app, stop)
            finally:
                # No new updates come in by now; answers still streaming end with a note.
                await handlers.interrupt_answers()
                await app.stop()
        link.disconnected("stopped")
        logger.info("Telegram: stopped")

    async def _sign_in(self, app: Application, requests: tuple[AiohttpRequest, ...]) -> None:
        """getMe, turning the two ways it fails at start into one clear message for the owner."""
        try:
            await app.initialize()
        except (InvalidToken, NetworkError) as exc:
            for request in requests:  # a failed initialize leaves them open; shutdown() would not close them
                await request.shutdown()
            if isinstance(exc, InvalidToken):
                raise ConfigError(
                    "Telegram refused TELEGRAM_TOKEN. Check the token @BotFather gave you."
                ) from None
            raise PlatformUnavailable(
                f"Telegram could not be reached at {self._config.api_base_url} ({exc.message}). "
                "Check the network, or TELEGRAM_API_BASE_URL."
            ) from None

    def _build(self, request: AiohttpRequest, updates_request: AiohttpRequest) -> Application:
        scale = self._config.pace_scale
        queue = CheckoutFirstQueue()  # pre-checkout queries are answered at once, however busy
        builder = (
            ApplicationBuilder()
            .token(self._config.token)
            .base_url(self._config.api_base_url)
            .base_file_url(self._config.file_base_url)
            # aiohttp rather than python-telegram-bot's httpx: see transport.py for the figures.
            .request(request)
            .get_updates_request(updates_request)
            # Updates are handled concurrently: a long answer must not hold up a Stop button.
            # Messages of one conversation still get answered in order (the core's turn lock).
            .concurrent_updates(self._config.max_concurrent_updates)
            .update_queue(queue)
            # The bot-wide 30 per second; per-chat pacing is ChatPacing's job.
            .rate_limiter(
                BotWideLimiter(
                    scale,
                    shared=self._config.shared_limits,
                    namespace=f"telegram:{self._config.token.split(':', 1)[0]}",
                )
            )
        )
        if self._config.webhook_url:
            builder = builder.updater(None)
        app = builder.build()
        queue.app = app
        return app

    async def _set_commands(self, app: Application, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """The command menu, description and short description: the owner's DEFAULT_LANGUAGE for
        everyone, and each of our languages for the clients set to it (its ``language_code``s).

        Registered only when they differ from the last registration (its hash is kept in the
        database): a restart, or the other workers sharing the database, send nothing."""
        every = (*COMMANDS, *ACCESS_COMMANDS, *extra)
        menus: list[tuple[str, list[tuple[str, str]], str, str]] = []
        for language, codes in menu_languages():
            with using(language):
                commands = [(name, _(text)) for name, text in every]
                description, short = _(DESCRIPTION), _(SHORT_DESCRIPTION)
            menus.extend((code, commands, description, short) for code in codes)
        key = f"telegram.menus.{app.bot.id}"
        wanted = hashlib.sha256(json.dumps(menus, ensure_ascii=False).encode()).hexdigest()
        store = self._core.credits.store
        if await store.get_meta(key) == wanted:
            logger.info("Telegram: command menus unchanged; not registering them")
            return
        for code, commands, description, short in menus:
            try:
                await app.bot.set_my_commands([BotCommand(*c) for c in commands], language_code=code)
                await app.bot.set_my_description(description, language_code=code)
                await app.bot.set_my_short_description(short, language_code=code)
            except TelegramError:
                logger.warning(
                    "Telegram: could not register the command menu (%s)", code or "default", exc_info=True
                )
                return  # not noted as registered: the next start tries again
        await store.set_meta(key, wanted)

    async def _poll(self, app: Application, stop: asyncio.Event) -> None:
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0,
            timeout=timedelta(seconds=self._config.poll_timeout),
            allowed_updates=ALLOWED_UPDATES,
        )
        logger.info("Telegram: polling for updates")
        try:
            await stop.wait()
        finally:
            await app.updater.stop()

    async def _serve_webhook(self, app: Application, stop: asyncio.Event) -> None:
        url = self._config.webhook_url
        assert url is not None
        # One secret shared by every worker (required at start): the header is always checked.
        secret = self._config.webhook_secret
        if not secret:
            raise ConfigError("TELEGRAM_WEBHOOK_SECRET must be set when TELEGRAM_WEBHOOK_URL is set.")
        host, _, port = self._config.webhook_listen.rpartition(":")
        path = urlsplit(url).path or "/"
        web_app = web.Application()
        web_app.router.add_post(path, _webhook_handler(app, secret))
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, int(port)).start()
            claim = self._config.claim_webhook
            if claim is None or await claim():
                await app.bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
                logger.info("Telegram: webhook registered for %s", url)
            else:
                logger.info("Telegram: another process registers the webhook; this one receives its posts")
            logger.info("Telegram: receiving updates by webhook on %s%s", self._config.webhook_listen, path)
            await stop.wait()
        finally:
            # The webhook itself stays set: other workers behind the same URL keep serving.
            await runner.cleanup()


DESCRIPTION = N_(
    "I'm a MiniToolAI assistant: ask me anything, send me pictures or documents, and I make pictures "
    "with /imagine. I speak English, Turkish and Norwegian: /language."
)
SHORT_DESCRIPTION = N_("MiniToolAI chat and pictures, in English, Turkish and Norwegian.")


def menu_languages() -> list[tuple[str, tuple[str, ...]]]:
    """Which language each ``language_code`` gets: ``""`` (every other client) the default one."""
    return [(default_language(), ("",))] + [(code, aliases) for code, (_name, aliases) in LANGUAGES.items()]


async def _begin_request(update: Update, context: object) -> None:
    """Every update starts a request: its answer's log lines, down to the settle, share one id."""
    ops_context.begin(PLATFORM)


def _webhook_handler(app: Application, secret: str) -> Any:
    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            logger.warning("Telegram webhook: refused a request without the right secret token")
            return web.Response(status=403, text="Forbidden")
        try:
            data = await request.json()
        except json.JSONDecodeError:
            return web.Response(status=400, text="Bad Request")
        update = Update.de_json(data, app.bot)
        if update is not None:
            await app.update_queue.put(update)
        return web.Response(text="OK")

    return receive
