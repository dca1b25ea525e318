"""Bot-wide limits on the owner's money, and the private alerts that tell owners about them.

``BotLimits`` names the store counters a request moves: the spending of the UTC day and of the
calendar month (SPENDING_LIMIT_DAILY_USD, SPENDING_LIMIT_MONTHLY_USD) and the starting grants of
the UTC day (NEW_USER_GRANTS_PER_DAY). The store moves them in the same transaction as the hold
or the grant, so no concurrency can pass a limit (``bot.ports.LedgerStore.reserve``). A counter
holds what was charged plus what is still held; a hold counts in the period it was made in.

``OwnerAlerts`` sends one private message to every ``BOT_ADMIN_IDS`` owner a platform can reach,
once per key (a limit's period, MiniToolAI refusing the owner's key for a day): the key is
claimed in the store first, so neither a restart nor a second process alerts again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.credits import money
from bot.errors import AuthenticationError, MiniToolAIError, PaymentRequired, SpendingLimitReached
from bot.ports import Counter, PrivateMessenger

logger = logging.getLogger(__name__)

SPENDING_PREFIX = "spending"
GRANTS_PREFIX = "grants"


def _day(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def _month(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class BotLimits:
    """The owner's bot-wide limits in micro-dollars (0 = none) and grants per UTC day (0 = no cap)."""

    daily_spending: int = 0
    monthly_spending: int = 0
    grants_per_day: int = 0

    def spending(self, now: datetime) -> tuple[Counter, Counter]:
        """The day's and the month's spending counters; both move even with no limit set, so a
        limit set later (or shown by ``spent``) starts from the real total."""
        return (
            Counter(f"{SPENDING_PREFIX}:day:{_day(now)}", self.daily_spending or None),
            Counter(f"{SPENDING_PREFIX}:month:{_month(now)}", self.monthly_spending or None),
        )

    def grants(self, now: datetime) -> Counter | None:
        return (
            Counter(f"{GRANTS_PREFIX}:day:{_day(now)}", self.grants_per_day) if self.grants_per_day else None
        )

    @staticmethod
    def period_of(key: str) -> str:
        """``"day"`` or ``"month"`` for a spending counter's key."""
        return "month" if key.startswith(f"{SPENDING_PREFIX}:month:") else "day"


def resets_at(period: str, now: datetime) -> datetime:
    """When a spending counter of ``period`` starts again: the next UTC midnight, or next month's 1st."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day + timedelta(days=1)
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def refusal(exc: SpendingLimitReached, limits: BotLimits, now: datetime) -> SpendingLimitReached:
    """The store's refusal as the sentence a member reads (it names no amount, but when it ends)."""
    period = limits.period_of(exc.key)
    return SpendingLimitReached(
        period=period, key=exc.key, limit=exc.limit, now=now, resets=resets_at(period, now)
    )


def limit_alert(exc: SpendingLimitReached) -> str:
    period = exc.period
    when = exc.key.rsplit(":", 1)[-1]
    setting = "SPENDING_LIMIT_DAILY_USD" if period == "day" else "SPENDING_LIMIT_MONTHLY_USD"
    reset = "at 00:00 UTC" if period == "day" else "on the 1st of next month (UTC)"
    return (
        f"MiniToolAI Bot reached its {'daily' if period == 'day' else 'monthly'} spending limit of "
        f"{money.format_amount(exc.limit)} ({when}, UTC). Requests that would pass it are refused "
        f"until it resets {reset}. To change it, set {setting} and restart the bot."
    )


def upstream_alert(exc: MiniToolAIError) -> str:
    if isinstance(exc, PaymentRequired):
        return (
            "MiniToolAI says your balance is empty (402), so the bot cannot answer anyone. Members are "
            "told the bot's owner needs to top up, and nothing is charged to them. Top up your "
            "MiniToolAI account to bring the bot back."
        )
    return (
        f"MiniToolAI refused the bot's API key ({exc.status or 401}), so the bot cannot answer anyone. "
        "Members are told the bot's owner needs to top up, and nothing is charged to them. Check "
        "MINITOOLAI_API_KEY and your MiniToolAI account."
    )


class ClaimStore(Protocol):
    async def claim_once(self, key: str) -> bool: ...


class OwnerAlerts:
    """One private message per event to every owner a registered platform can reach."""

    def __init__(self, store: ClaimStore, admin_ids: frozenset[str]) -> None:
        self._store = store
        self._admin_ids = admin_ids
        self._messengers: dict[str, PrivateMessenger] = {}
        self._seen: set[str] = set()  # keys this process has claimed or seen claimed: no more writes

    def register(self, platform: str, messenger: PrivateMessenger) -> None:
        """An adapter, once connected, lets alerts reach its platform's owners."""
        self._messengers[platform] = messenger

    async def once(self, key: str, text: str) -> int:
        """Send ``text`` to the owners the first time ``key`` is seen anywhere; return how many got it."""
        if key in self._seen:
            return 0
        self._seen.add(key)
        if not await self._store.claim_once(f"alert:{key}"):
            return 0
        logger.warning("owner alert: %s", text)
        sent = 0
        for admin in sorted(self._admin_ids):
            platform, _, holder = admin.partition(":")
            messenger = self._messengers.get(platform)
            if messenger is None or not holder:
                continue
            try:
                if await messenger.send_private(holder, text):
                    sent += 1
            except Exception:
                logger.warning("could not send the owner alert to %s", admin, exc_info=True)
        if not sent:
            logger.warning("no owner could be reached privately for this alert (BOT_ADMIN_IDS)")
        return sent

    async def limit_reached(self, exc: SpendingLimitReached) -> int:
        return await self.once(exc.key, limit_alert(exc))

    async def upstream_refused(self, exc: MiniToolAIError, now: datetime | None = None) -> int:
        """MiniToolAI refused the owner's key or balance: one alert per kind per UTC day."""
        if not isinstance(exc, (PaymentRequired, AuthenticationError)):
            return 0
        kind = "payment" if isinstance(exc, PaymentRequired) else "key"
        return await self.once(f"upstream:{kind}:{_day(now or datetime.now(UTC))}", upstream_alert(exc))
