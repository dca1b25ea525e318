"""The composition root: settings -> HTTP session and store -> core services -> adapters -> run.

This is the one module allowed to know every layer (import-linter lets it, and only it, import
``storage`` and ``adapters``). Nothing is built at import time; ``main`` builds everything
inside ``async with`` blocks so that shutdown closes it all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import cast

import aiohttp
from limits.aio.storage import Storage as RateStorage

import storage
from bot.access.policy import AccessLists, Asker, parse_subjects
from bot.access.rates import RateLimits
from bot.access.service import AccessService
from bot.chat.conversations import ChatLimits, ConversationService
from bot.chat.tokens import TokenCounter
from bot.commands import Commands, CreditCommands
from bot.coordination.answers import SharedAnswers
from bot.coordination.lease import ProcessLease
from bot.coordination.supervise import supervise
from bot.core import Core
from bot.credits import CreditPolicy, CreditService
from bot.credits.limits import BotLimits
from bot.credits.money import parse_amount
from bot.errors import BotError, ConfigError
from bot.i18n import set_default_language
from bot.images.service import ImageConfig, ImageService
from bot.logs import configure_logging
from bot.maintenance import prune_until
from bot.minitoolai.client import ClientTimeouts, MiniToolAIClient
from bot.minitoolai.prices import PriceTable, parse_price_overrides
from bot.ops import metrics
from bot.ops.health import META_PREFIX, Health, LinkState, Snapshot
from bot.ops.server import metrics_endpoint
from bot.ops.timing import TimedCalls
from bot.payments.payload import derive_key
from bot.payments.service import Allowed, StarsService, allow_everyone
from bot.payments.values import StarPaymentStore, StarsOffer
from bot.ports import Account, Actor, Adapter, AnswerGate, Place, SharedLimits, SharedLock, SharedSlots, Store
from bot.preferences import ChatDefaults, Preferences
from bot.settings import MISSING_KEY_HELP, Settings, load_settings

logger = logging.getLogger("bot")

MICRO = 1_000_000
WEBHOOK_ROLE = "telegram:set-webhook"
CLI_OWNER = Account("cli", "owner")
# The person at the terminal runs the bot: its owner there (the console adapter's account).
CONSOLE_OWNER = Account("console", "owner")

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
        "  python -m bot status                        database, platforms, queue, holds, today's spending\n"
        "  python -m bot db migrate                    bring the database schema up to date\n"
        "  python -m bot db backup backup.sqlite3      consistent copy of the SQLite database, live\n"
        "  python -m bot credits show telegram:12345   a user's balance and spending\n"
        "  python -m bot credits grant discord:999 5   give a user $5 (or 5 credits)\n"
        "  python -m bot credits limits                today's and this month's spending against the limits\n"
        "  SPENDING_LIMIT_DAILY_USD=5 python -m bot    run the bot spending at most $5 a UTC day\n"
        "  python -m bot access allow chat telegram:-1001234   serve this Telegram group\n"
        "  python -m bot access block user discord:98765       refuse this Discord user\n"
        "  python -m bot credits purchases             Telegram Stars received, credit given, refunds\n"
        "  python -m bot credits refund telegram:12345 <charge id> [--force]   refund a Stars payment\n"
        "  DEFAULT_LANGUAGE=tr python -m bot           members whose app says no language hear Turkish\n"
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
    commands.add_parser(
        "status", help="the bot's health as text: database, platforms, queue, open holds, spending today"
    )

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
    ops.add_parser("limits", help="the bot's spending today and this month against its limits")
    access = commands.add_parser(
        "access", help="who may use the bot and where (stored; overrides the settings)"
    )
    access_ops = access.add_subparsers(dest="access_command", required=True)
    access_ops.add_parser("list", help="the allowed and blocked users, chats and roles now")
    for name, text in (
        ("allow", "serve"),
        ("block", "refuse (a block always wins)"),
        ("unblock", "lift a block, or forget an allow made here"),
    ):
        op = access_ops.add_parser(name, help=f"{text} a user, chat or role")
        op.add_argument("kind", choices=["user", "chat", "role"])
        op.add_argument("subject", help="platform:id, e.g. telegram:12345, telegram:-1001234, discord:98765")
    purchases = ops.add_parser(
        "purchases", help="Telegram Stars received, credit given and refunds, per member and in total"
    )
    purchases.add_argument("user", nargs="?", default="", help="only this member, e.g. telegram:12345")
    refund = ops.add_parser(
        "refund",
        help="return a Telegram Stars payment and take its credit back (refused if part of it was spent)",
    )
    refund.add_argument("user", help="the member who paid, e.g. telegram:12345")
    refund.add_argument(
        "charge_id", help="the payment id (telegram_payment_charge_id) from `credits purchases`"
    )
    refund.add_argument(
        "--force",
        action="store_true",
        help="refund even if part of the credit was spent: take back what is left",
    )
    return parser


# ---------------------------------------------------------------- building the core


def owner_ids(settings: Settings) -> frozenset[str]:
    """BOT_ADMIN_IDS, plus the command line's and the terminal's owner."""
    return settings.admin_ids | {f"{a.platform}:{a.holder}" for a in (CLI_OWNER, CONSOLE_OWNER)}


def access_lists(settings: Settings) -> AccessLists:
    return AccessLists(
        allowed_users=parse_subjects(settings.allowed_users),
        blocked_users=parse_subjects(settings.blocked_users),
        allowed_chats=parse_subjects(settings.allowed_chats),
        blocked_chats=parse_subjects(settings.blocked_chats),
        allowed_roles=parse_subjects(settings.allowed_roles),
        allow_private=settings.allow_private,
        admins=owner_ids(settings),
    )


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
        admin_ids=owner_ids(settings),
        trust_community_admins=settings.trust_community_admins,
    )


def bot_limits(settings: Settings) -> BotLimits:
    return BotLimits(
        daily_spending=parse_amount(str(settings.spending_limit_daily_usd)),
        monthly_spending=parse_amount(str(settings.spending_limit_monthly_usd)),
        grants_per_day=settings.new_user_grants_per_day,
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
    *,
    is_allowed: Allowed | None = None,
    gate: AnswerGate | None = None,
    shared_lock: SharedLock | None = None,
    shared_slots: SharedSlots | None = None,
    rate_storage: RateStorage | None = None,
) -> Core:
    """``is_allowed`` decides who may pay for credit (by default the owner's allow and block lists);
    with several processes, ``gate`` keeps one answer per conversation across them and
    ``shared_lock`` / ``shared_slots`` / ``rate_storage`` (Redis) make the pool's cap, the image
    limit and the per-member rate limits exact across them."""
    set_default_language(settings.default_language)  # DEFAULT_LANGUAGE: the last word on languages
    credits = CreditService(
        store,
        price_table(settings),
        credit_policy(settings),
        limits=bot_limits(settings),
        shared_lock=shared_lock,
    )
    access = AccessService(store, access_lists(settings))
    payments = stars_service(settings, store, credits, is_allowed or may_pay(access))
    defaults = ChatDefaults(
        model=settings.default_chat_model,
        system_prompt=settings.default_system_prompt,
        temperature=settings.default_temperature,
        image_model=settings.default_image_model,
    )
    prefs = Preferences(store, defaults, owner_ids(settings))
    limits = ChatLimits(
        max_completion_tokens=settings.max_completion_tokens,
        context_margin=settings.context_margin_tokens,
        max_context_tokens=settings.max_context_tokens,
        context_max_pictures=settings.context_max_pictures,
        max_document_bytes=settings.max_document_kb * 1024,
    )
    rates = RateLimits(
        messages_per_minute=settings.user_messages_per_minute,
        images_per_hour=settings.user_images_per_hour,
        storage=rate_storage,
    )
    chat = ConversationService(
        store, client, credits, prefs, tokens, limits, rates=rates, gate=gate, access=access
    )
    images = ImageService(
        store,
        client,
        credits,
        prefs,
        image_config(settings),
        rates=rates,
        shared_slots=shared_slots,
        access=access,
    )
    return Core(
        chat=chat,
        credits=credits,
        prefs=prefs,
        commands=Commands(chat, credits, prefs, payments),
        images=images,
        access=access,
        payments=payments,
    )


def may_pay(access: AccessService) -> Allowed:
    """Who may buy credit: whoever the owner's lists serve in a private chat with the bot."""

    async def allowed(member: Account) -> bool:
        return access.check(Asker(member, Place(member.platform, f"dm:{member.holder}"))).allowed

    return allowed


def stars_service(
    settings: Settings, store: Store, credits: CreditService, is_allowed: Allowed = allow_everyone
) -> StarsService:
    """Telegram Stars payments; the payload key is derived from the bot's own secret, never stored."""
    if not isinstance(store, StarPaymentStore):
        raise ConfigError("This database backend cannot keep Telegram Stars payments.")
    offer = StarsOffer(settings.stars_pack_list, parse_amount(str(settings.stars_usd_per_star)))
    secret = settings.telegram_token or settings.minitoolai_api_key
    key = derive_key(secret.get_secret_value()) if secret is not None else secrets.token_bytes(32)
    return StarsService(store, credits, offer, key, is_allowed=is_allowed)


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
    metrics.set_enabled(bool(settings.metrics_listen))
    # SQLite: this process alone (a second one is refused); PostgreSQL: shared through leases.
    with storage.process_lock(settings.database_url) as exclusive:
        async with open_store(settings) as raw_store, aiohttp.ClientSession(connector=connector) as http:
            # With metrics on, every store call is timed (db_call_seconds); storage knows nothing of it.
            store = cast(Store, TimedCalls(raw_store)) if settings.metrics_listen else raw_store
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
    core = build_core(
        settings,
        store,
        client,
        tokens,
        gate=gate,
        shared_lock=limits.lock if limits else None,
        shared_slots=limits,
        rate_storage=limits.member_rates() if limits else None,
    )
    await core.access.load()  # the stored overrides, kept in memory from here on
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
    watch_health(core, store)
    try:
        # Each adapter registers its image surfaces and calls images.resume() once connected.
        async with (
            core.images,
            ops_endpoint(settings, core.health),
            _first_bot_error(),
            asyncio.TaskGroup() as group,
        ):
            group.create_task(core.health.record_links(store, stop), name="health-record")
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
            group.create_task(core.access.refresh_until(stop), name="access-refresh")
        await core.health.save(store)  # each platform's last state, for `python -m bot status`
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


# ---------------------------------------------------------------- operations (health, metrics, status)


def watch_health(core: Core, store: Store) -> None:
    """Tell the health model how to check the database and read the numbers worth a gauge."""

    async def snapshot() -> Snapshot:
        holds = await store.open_reservations()
        return Snapshot(
            image_queue=core.images.queued,
            image_running=core.images.running,
            open_holds=len(holds),
            open_held=sum(h.amount for h in holds),
        )

    core.health.database_check = lambda: store.get_meta("ops.ping")
    core.health.snapshot = snapshot


@asynccontextmanager
async def ops_endpoint(settings: Settings, health: Health) -> AsyncIterator[None]:
    """/healthz, /readyz and /metrics on METRICS_LISTEN while the bot runs (nothing when empty)."""
    if not settings.metrics_listen:
        yield
        return
    async with metrics_endpoint(settings.metrics_listen, health):
        yield


async def status_command(settings: Settings) -> str:
    """``python -m bot status``: the health an owner checks, as text (from another process)."""
    _, version = await storage.migrate(settings.database_url)
    lines = [f"Database: answers ({_where(settings)}); schema version {version}, migrations up to date."]
    async with open_store(settings) as store:
        credits = CreditService(store, price_table(settings), credit_policy(settings))
        for name, token in (("telegram", settings.telegram_token), ("discord", settings.discord_token)):
            text = await store.get_meta(META_PREFIX + name)
            if token is None and text is None:
                continue
            lines.append(f"{name.capitalize()}: {_link_line(text)}")
        jobs = await store.unfinished_jobs()
        queued = sum(job.state == "queued" for job in jobs)
        lines.append(f"Picture queue: {queued} queued, {len(jobs) - queued} generating.")
        holds = await store.open_reservations()
        lines.append(
            f"Open holds: {len(holds)} ({credits.format_amount(sum(h.amount for h in holds))} held)."
        )
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        spent = await store.spent_between(today, today + timedelta(days=1))
        lines.append(f"Spent today (UTC): {credits.format_amount(spent)}.")
    return "\n".join(lines)


def _where(settings: Settings) -> str:
    target = storage.parse_database_url(settings.database_url)
    return f"{target.backend} {target.where}"


def _link_line(text: str | None) -> str:
    if text is None:
        return "never connected."
    state = LinkState.from_json(text)
    since = state.since.strftime("%Y-%m-%d %H:%M:%S UTC")
    reason = f" ({state.reason})" if state.reason else ""
    last = state.last_connected.strftime("%Y-%m-%d %H:%M:%S UTC") if state.last_connected else "never"
    return f"{state.status}{reason} since {since}; last connected {last}."


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
        credits = CreditService(
            store, price_table(settings), credit_policy(settings), limits=bot_limits(settings)
        )
        owner = Actor(CLI_OWNER)
        commands = CreditCommands(credits)
        op = args.credits_command
        payments = stars_service(settings, store, credits)
        if op == "show":
            user = _account(args.user)
            status = await credits.status(user)
            private = Place(user.platform, f"dm:{user.holder}")  # their own charges, no community pool
            usage = (await CreditCommands(credits, payments).usage(Actor(user), private)).text
            return credits.render_status(status) + "\n\n" + usage
        if op == "purchases":
            return await payments.report(_account(args.user) if args.user else None)
        if op == "refund":
            return await _refund(settings, payments, owner, _account(args.user), args.charge_id, args.force)
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
        if op == "limits":
            return await credits.limits_report()
        since = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return credits.render_spending(
            await credits.community_spending(owner, _community(args.community), since)
        )


async def access_command(settings: Settings, args: argparse.Namespace) -> str:
    async with open_store(settings) as store:
        access = AccessService(store, access_lists(settings))
        await access.load()
        owner = Actor(CLI_OWNER)
        if args.access_command == "list":
            return access.describe(owner)
        platform = args.subject.partition(":")[0].lower()
        if platform not in ("telegram", "discord"):
            raise ConfigError(f"“{args.subject}” is not platform:id (e.g. telegram:12345).")
        said = await access.set_rule(owner, args.access_command, args.kind, args.subject, platform)
        return said + " A running bot applies it within a minute."


async def _refund(
    settings: Settings, payments: StarsService, owner: Actor, user: Account, charge_id: str, force: bool
) -> str:
    """A refund from the command line talks to the Bot API itself: the bot need not be running."""
    if user.platform != "telegram":
        raise ConfigError("Only Telegram payments can be refunded (the user is telegram:<id>).")
    if settings.telegram_token is None:
        raise ConfigError("Refunding a Telegram Stars payment needs TELEGRAM_TOKEN.")
    from adapters.telegram.payments import standalone_refunds

    token = settings.telegram_token.get_secret_value()
    async with standalone_refunds(token, settings.telegram_api_base_url) as refunds:
        return await payments.refund(owner, user, charge_id, refunds, force=force)


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
    configure_logging(_log_level(settings, args), secrets, settings.log_format)
    try:
        if args.command == "db":
            print(asyncio.run(db_command(settings, args)))  # noqa: T201
        elif args.command == "status":
            print(asyncio.run(status_command(settings)))  # noqa: T201
        elif args.command == "credits":
            print(asyncio.run(credits_command(settings, args)))  # noqa: T201
        elif args.command == "access":
            print(asyncio.run(access_command(settings, args)))  # noqa: T201
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
