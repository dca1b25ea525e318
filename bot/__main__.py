"""The composition root: settings -> HTTP session and store -> core services -> adapters -> run.

This is the one module allowed to know every layer (import-linter lets it, and only it, import
``storage`` and ``adapters``). Nothing is built at import time; ``main`` builds everything
inside ``async with`` blocks so that shutdown closes it all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from fractions import Fraction

import aiohttp

import storage
from bot.chat.conversations import ChatLimits, ConversationService
from bot.chat.tokens import TokenCounter
from bot.commands import Commands, CreditCommands
from bot.coordination.answers import SharedAnswers
from bot.coordination.lease import ProcessLease
from bot.coordination.supervise import supervise
from bot.core import Core
from bot.credits import CreditPolicy, CreditService
from bot.credits.money import parse_amount
from bot.errors import BotError, ConfigError
from bot.images.service import ImageConfig, ImageService
from bot.logs import configure_logging
from bot.maintenance import prune_until
from bot.minitoolai.client import ClientTimeouts, MiniToolAIClient
from bot.minitoolai.prices import PriceTable, parse_price_overrides
from bot.ports import Account, Actor, Adapter, AnswerGate, Place, SharedLimits, SharedLock, SharedSlots, Store
from bot.preferences import ChatDefaults, Preferences
from bot.settings import MISSING_KEY_HELP, Settings, load_settings

logger = logging.getLogger("bot")

MICRO = 1_000_000
WEBHOOK_ROLE = "telegram:set-webhook"
CLI_OWNER = Account("cli", "owner")

DESCRIPTION = """\
MiniToolAI Bot: MiniToolAI chat (streamed, with vision) and text-to-image for Discord
servers, Telegram chats and the terminal, with per-user credits.

With no command it runs the bot: every platform whose token is set (DISCORD_TOKEN,
TELEGRAM_TOKEN) in one process, or, with neither, a chat in this terminal.
Stop it with Ctrl-C or SIGTERM: answers in progress are recorded and connections closed.
"""


def _epilog() -> str:
    names = ", ".join(name.upper() for name in Settings.model_fields)
    return (
        "Settings come from the environment and a .env file (see .env.example, which explains each):\n"
        f"{names}.\n\n"
        "Examples:\n"
        "  python -m bot                               run the bot\n"
        "  python -m bot db migrate                    bring the database schema up to date\n"
        "  python -m bot db backup backup.sqlite3      consistent copy of the SQLite database, live\n"
        "  python -m bot credits show telegram:12345   a user's balance and spending\n"
        "  python -m bot credits grant discord:999 5   give a user $5 (or 5 credits)\n"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env-file", default=".env", help="settings file to read (default: .env)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the bot (the default)")

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("migrate", help="apply pending schema migrations (also done at every start)")
    backup = db.add_parser("backup", help="consistent copy of the SQLite database, safe while the bot runs")
    backup.add_argument("path", help="where to write the copy")

    credits = commands.add_parser("credits", help="the owner's credit controls")
    ops = credits.add_subparsers(dest="credits_command", required=True)
    show = ops.add_parser("show", help="a user's balance, spending and last charges")
    show.add_argument("user", help="platform:user_id, e.g. telegram:12345 or discord:999")
    for name, text in (("grant", "add to"), ("take", "take from"), ("set", "set")):
        op = ops.add_parser(name, help=f"{text} a user's balance")
        op.add_argument("user", help="platform:user_id")
        op.add_argument("amount", help="dollars ($5, 0.50) or '500 credits'")
    fund = ops.add_parser("fund-pool", help="add to a community's pool")
    fund.add_argument("community", help="platform:scope, e.g. discord:<guild id> or telegram:<chat id>")
    fund.add_argument("amount")
    cap = ops.add_parser("pool-cap", help="limit what each member may take from a pool per day")
    cap.add_argument("community")
    cap.add_argument("amount", help="an amount, or 'off'")
    grant = ops.add_parser("starting-grant", help="what new users receive")
    grant.add_argument("amount")
    allowance = ops.add_parser("allowance", help="the periodic refill of every user's balance")
    allowance.add_argument("amount")
    allowance.add_argument("period", choices=["none", "daily", "weekly"])
    allowance.add_argument("cap", nargs="?", default="", help="the refill never lifts a balance above this")
    spending = ops.add_parser("spending", help="what a community spent from its pool this month")
    spending.add_argument("community")
    return parser


# ---------------------------------------------------------------- building the core


def credit_policy(settings: Settings) -> CreditPolicy:
    def micro(dollars: object) -> int:
        return parse_amount(str(dollars))

    return CreditPolicy(
        starting_grant=micro(settings.starting_grant_usd),
        allowance=micro(settings.allowance_usd),
        allowance_period=settings.allowance_period,
        allowance_cap=micro(settings.allowance_cap_usd),
        credits_per_dollar=settings.credits_per_dollar,
        pool_order=settings.pool_order,
        admin_ids=settings.admin_ids | {f"{CLI_OWNER.platform}:{CLI_OWNER.holder}"},
        trust_community_admins=settings.trust_community_admins,
    )


def price_table(settings: Settings) -> PriceTable:
    try:
        overrides = parse_price_overrides(settings.price_overrides)
    except ValueError as exc:
        raise ConfigError(f"PRICE_OVERRIDES: {exc}") from None
    return PriceTable().with_overrides(overrides, markup=Fraction(settings.price_markup))


def build_core(
    settings: Settings,
    store: Store,
    client: MiniToolAIClient,
    tokens: TokenCounter,
    gate: AnswerGate | None = None,
    shared_lock: SharedLock | None = None,
    shared_slots: SharedSlots | None = None,
) -> Core:
    credits = CreditService(
        store,
        price_table(settings),
        credit_policy(settings),
        shared_lock=shared_lock,
    )
    defaults = ChatDefaults(
        model=settings.default_chat_model,
        system_prompt=settings.default_system_prompt,
        temperature=settings.default_temperature,
        image_model=settings.default_image_model,
    )
    prefs = Preferences(store, defaults, settings.admin_ids)
    limits = ChatLimits(
        max_completion_tokens=settings.max_completion_tokens,
        context_margin=settings.context_margin_tokens,
        max_context_tokens=settings.max_context_tokens,
    )
    chat = ConversationService(store, client, credits, prefs, tokens, limits, gate)
    images = ImageService(store, client, credits, prefs, image_config(settings), shared_slots=shared_slots)
    return Core(
        chat=chat, credits=credits, prefs=prefs, commands=Commands(chat, credits, prefs), images=images
    )


def image_config(settings: Settings) -> ImageConfig:
    return ImageConfig(
        per_user_limit=settings.image_per_user_limit,
        global_concurrency=settings.image_global_concurrency,
        deadline=settings.image_deadline_seconds,
        poll_initial=settings.image_poll_initial_seconds,
        poll_max=settings.image_poll_max_seconds,
        max_download_bytes=int(settings.image_max_download_mb * 1024 * 1024),
        progress_interval=settings.image_progress_interval_seconds,
    )


def build_adapters(
    settings: Settings,
    core: Core,
    claim_role: Callable[[str], Awaitable[bool]] | None = None,
    shared_limits: SharedLimits | None = None,
) -> list[Adapter]:
    """Every platform whose token is set; the terminal chat when there is none.

    Adapters are imported only when used, so an owner of a Telegram bot never loads discord.py.
    ``claim_role`` (the store's) lets one process of several do what is done once for all.
    """
    adapters: list[Adapter] = []
    if settings.telegram_token is not None:
        from adapters.telegram import TelegramAdapter, TelegramConfig

        secret = settings.telegram_webhook_secret
        adapters.append(
            TelegramAdapter(
                core,
                TelegramConfig(
                    token=settings.telegram_token.get_secret_value(),
                    api_base_url=settings.telegram_api_base_url,
                    file_base_url=settings.telegram_file_base_url,
                    webhook_url=settings.telegram_webhook_url,
                    webhook_secret=secret.get_secret_value() if secret else None,
                    webhook_listen=settings.telegram_webhook_listen,
                    pace_scale=settings.telegram_pace_scale,
                    claim_webhook=None if claim_role is None else lambda: claim_role(WEBHOOK_ROLE),
                    shared_limits=shared_limits,
                ),
            )
        )
    if settings.discord_token is not None:
        from adapters.discord import DiscordAdapter, DiscordConfig

        adapters.append(
            DiscordAdapter(
                core,
                DiscordConfig(
                    token=settings.discord_token.get_secret_value(),
                    api_base_url=settings.discord_api_base_url,
                    gateway_url=settings.discord_gateway_url,
                    dev_guild_id=settings.discord_dev_guild_id,
                    shard_ids=settings.shard_ids,
                    shard_count=settings.discord_shard_count,
                    message_content=settings.discord_message_content,
                    shared_limits=shared_limits,
                ),
            )
        )
    if not adapters:
        from adapters.console import ConsoleAdapter

        adapters.append(ConsoleAdapter(core))
    return adapters


def check_webhook(settings: Settings) -> None:
    """A webhook needs one secret shared by every worker behind its URL: Telegram sends it with
    each post, and a worker that made up its own would refuse the posts meant for another."""
    if settings.telegram_webhook_url is None:
        return
    secret = settings.telegram_webhook_secret
    if secret is None:
        raise ConfigError(
            "TELEGRAM_WEBHOOK_URL is set but TELEGRAM_WEBHOOK_SECRET is not. Every worker behind the "
            "webhook must check the same secret: add a line TELEGRAM_WEBHOOK_SECRET=<32 or more letters, "
            "digits, _ or -> to .env (the same for every worker)."
        )
    value = secret.get_secret_value()
    if not 1 <= len(value) <= 256 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        raise ConfigError(
            "TELEGRAM_WEBHOOK_SECRET must be 1 to 256 letters, digits, _ or - (Telegram's rule)."
        )


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    store = await storage.open_store(settings.database_url)
    try:
        yield store
    finally:
        await store.close()


# ---------------------------------------------------------------- running


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run every configured adapter until ``stop`` is set (by default: on SIGINT or SIGTERM).

    Tests pass their own ``stop`` and run the real composition root against the fakes.
    """
    if settings.minitoolai_api_key is None:
        raise ConfigError(MISSING_KEY_HELP)
    check_webhook(settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    api_key = settings.minitoolai_api_key.get_secret_value()
    # Each streaming answer holds one MiniToolAI connection for its whole length: aiohttp's
    # default pool of 100 would make the 101st concurrent answer wait for a free one.
    connector = aiohttp.TCPConnector(limit=0)
    # SQLite: this process alone (a second one is refused); PostgreSQL: shared through leases.
    with storage.process_lock(settings.database_url) as exclusive:
        async with open_store(settings) as store, aiohttp.ClientSession(connector=connector) as http:
            await _serve_with(settings, stop, store, http, api_key, exclusive=exclusive)
    logger.info("stopped cleanly")


async def _serve_with(
    settings: Settings,
    stop: asyncio.Event,
    store: Store,
    http: aiohttp.ClientSession,
    api_key: str,
    *,
    exclusive: bool,
) -> None:
    """Build the core over an open store and run the adapters (see ``serve``)."""
    timeouts = ClientTimeouts(
        connect=settings.minitoolai_connect_timeout,
        first_token=settings.minitoolai_first_token_timeout,
        idle=settings.minitoolai_idle_timeout,
        total=settings.minitoolai_total_timeout,
    )
    client = MiniToolAIClient(
        http,
        base_url=settings.minitoolai_base_url,
        api_key=api_key,
        timeouts=timeouts,
    )
    tokens = TokenCounter()
    await tokens.try_tiktoken()  # exact counts when tiktoken and its cached encoding are there
    # Several processes (PostgreSQL): one answer per conversation across them, Stop reaching
    # the process writing the answer (LISTEN/NOTIFY). None on SQLite: one process.
    signals = storage.open_signals(settings.database_url)
    gate = None if signals is None else SharedAnswers(store, signals, store.process_id)
    # With REDIS_URL the platforms' rate budgets and the pool's daily cap check are shared by
    # every process; else per process.
    limits = await storage.open_shared_limits(settings.redis_url) if settings.redis_url else None
    core = build_core(settings, store, client, tokens, gate, limits.lock if limits else None, limits)
    try:
        if gate is not None:
            chat = core.chat
            await gate.start(lambda place, user, admin: chat.stop(place, user, is_admin=admin))
        adapters = build_adapters(settings, core, store.claim_role, limits)  # importing them takes a while
        await _run_adapters(settings, stop, store, core, adapters, exclusive=exclusive)
    finally:
        if limits is not None:
            await limits.close()
        if signals is not None:
            await signals.close()


async def _run_adapters(
    settings: Settings,
    stop: asyncio.Event,
    store: Store,
    core: Core,
    adapters: list[Adapter],
    *,
    exclusive: bool,
) -> None:
    # This process's lease; then the holds of processes whose lease expired (all the holds a
    # previous run left, on SQLite) are settled or released. Holds of image jobs that will
    # resume stay open; the jobs are claimed when their platform's adapter resumes them.
    lease = ProcessLease(
        store, core.credits, core.images, ttl=settings.process_lease_seconds, exclusive=exclusive
    )
    report = await lease.start()
    if report.settled or report.released:
        logger.info("resolved reservations left open: %s", report)
    logger.info("starting %s", ", ".join(a.name for a in adapters))
    try:
        # Each adapter registers its image surfaces and calls images.resume() once connected.
        async with core.images, _first_bot_error(), asyncio.TaskGroup() as group:
            for adapter in adapters:
                # Each platform on its own: one failing is retried while the others serve.
                group.create_task(supervise(adapter, stop, alone=len(adapters) == 1), name=adapter.name)
            # Image work stops first, while the adapters' connections are still open.
            group.create_task(_close_on(stop, core.images), name="images-close")
            group.create_task(lease.run(stop), name="lease")
            group.create_task(
                prune_until(
                    stop,
                    store,
                    max_age_days=settings.conversation_max_age_days,
                    keep_turns=settings.conversation_keep_turns,
                ),
                name="prune",
            )
    finally:
        await lease.close()  # last: until here this process was finishing its own work


@asynccontextmanager
async def _first_bot_error() -> AsyncIterator[None]:
    """An adapter that fails with a BotError (a refused token, an unreachable platform) stops the
    bot with that one clear message, not a group of tracebacks; anything else stays a traceback."""
    try:
        yield
    except BaseExceptionGroup as group:
        matched, _ = group.split(BotError)
        if matched is None:
            raise
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _close_on(stop: asyncio.Event, images: ImageService) -> None:
    await stop.wait()
    await images.close()


async def db_command(settings: Settings, args: argparse.Namespace) -> str:
    if args.db_command == "migrate":
        before, after = await storage.migrate(settings.database_url)
        return f"Schema version {after}" + (
            f" (upgraded from {before})." if after != before else " (up to date)."
        )
    await storage.backup_sqlite(settings.database_url, args.path)
    return f"Backup written to {args.path}."


def _account(text: str) -> Account:
    platform, sep, holder = text.partition(":")
    if not sep or not platform or not holder:
        raise ConfigError(f"“{text}” is not platform:id (e.g. telegram:12345).")
    return Account(platform, holder)


def _community(text: str) -> Place:
    account = _account(text)
    return Place(account.platform, account.holder)


async def credits_command(settings: Settings, args: argparse.Namespace) -> str:
    async with open_store(settings) as store:
        credits = CreditService(store, price_table(settings), credit_policy(settings))
        owner = Actor(CLI_OWNER)
        commands = CreditCommands(credits)
        op = args.credits_command
        if op == "show":
            user = _account(args.user)
            status = await credits.status(user)
            return credits.render_status(status) + "\n\n" + credits.render_usage(await credits.usage(user))
        if op in ("grant", "take", "set"):
            action = {"grant": commands.grant, "take": commands.take, "set": commands.set_balance}[op]
            return (await action(owner, _account(args.user), args.amount)).text
        if op == "fund-pool":
            return (await commands.pool(owner, _community(args.community), "fund", args.amount)).text
        if op == "pool-cap":
            return (await commands.pool(owner, _community(args.community), "cap", args.amount)).text
        if op == "starting-grant":
            return (await commands.starting_grant(owner, args.amount)).text
        if op == "allowance":
            return (await commands.allowance(owner, args.amount, args.period, args.cap)).text
        since = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return credits.render_spending(
            await credits.community_spending(owner, _community(args.community), since)
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201  (before logging exists, stderr is the channel)
        return 2
    secrets = [
        s.get_secret_value()
        for s in (settings.minitoolai_api_key, settings.discord_token, settings.telegram_token)
        if s is not None
    ]
    configure_logging(_log_level(settings, args), secrets)
    try:
        if args.command == "db":
            print(asyncio.run(db_command(settings, args)))  # noqa: T201
        elif args.command == "credits":
            print(asyncio.run(credits_command(settings, args)))  # noqa: T201
        else:
            asyncio.run(serve(settings))
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        return 2
    except BotError as exc:
        # The owner is reading: the specific reason (it never holds a secret), not the chat apology.
        print(str(exc), file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _log_level(settings: Settings, args: argparse.Namespace) -> str:
    """LOG_LEVEL if the owner set it; otherwise INFO, or WARNING for the terminal chat, where
    log lines would land in the middle of the conversation."""
    chatting_here = args.command in (None, "run") and not (settings.telegram_token or settings.discord_token)
    if "log_level" not in settings.model_fields_set and chatting_here:
        return "WARNING"
    return settings.log_level


def run() -> None:
    """The ``minitoolai-bot`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    run()
