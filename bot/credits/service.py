"""Credits and quotas: reserve the worst case, settle to the exact usage, never charge twice.

Amounts are integer micro-dollars. Each platform account has a balance in the ledger
(``bot.ports.LedgerStore``); a community may also have a pool its members spend from
under a per-user daily cap. The flow for every paid request is:

    reserve_chat / reserve_image  -> Hold (or InsufficientCredits: nothing goes upstream)
    note_usage(hold, usage)       -> the usage chunk is recorded the moment it arrives
    settle_chat / settle_image    -> keep the exact cost, give back the rest
    release(hold)                 -> give everything back (failure, timeout, nothing streamed)

Settle and release are keyed by the reservation id, so calling them again does nothing;
``recover`` closes what a crash left open. Allowances refill lazily: the first reserve or
status of a period tops the balance up under a key naming the period, so there is no timer.

Owner-changed values (starting grant, allowance) live in ``SettingsStore`` meta under
``credits.*`` keys and override the configured ``CreditPolicy``; a community's per-user
daily pool cap lives in its ``ChannelSettings.extra["pool_daily_cap"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, get_args

from bot.credits import money, periods, texts
from bot.credits.limits import BotLimits, OwnerAlerts, refusal
from bot.credits.values import (
    AdminResult,
    Allowance,
    AllowancePeriod,
    AllowanceStatus,
    CommunitySpending,
    CreditPolicy,
    CreditStatus,
    Hold,
    PoolOrder,
    PoolStatus,
    PriceLine,
    RecoveryDecision,
    RecoveryReport,
    Resolver,
    UsageLine,
)
from bot.errors import InsufficientCredits, NotAllowed, SpendingLimitReached, ValidationError
from bot.i18n import N_, _, privately
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ops import metrics
from bot.ports import (
    Account,
    Actor,
    ChannelSettings,
    LedgerStore,
    Place,
    Reservation,
    SettingsStore,
    SharedLock,
)

__all__ = [  # the values live in bot.credits.values; importing them from here works too
    "AdminResult",
    "Allowance",
    "AllowancePeriod",
    "AllowanceStatus",
    "CommunitySpending",
    "CreditPolicy",
    "CreditService",
    "CreditStatus",
    "CreditStore",
    "Hold",
    "PoolOrder",
    "PoolStatus",
    "PriceLine",
    "RecoveryDecision",
    "RecoveryReport",
    "Resolver",
    "UsageLine",
]

logger = logging.getLogger(__name__)

META_STARTING_GRANT = "credits.starting_grant"
META_ALLOWANCE = "credits.allowance"
META_ALLOWANCE_PERIOD = "credits.allowance_period"
META_ALLOWANCE_CAP = "credits.allowance_cap"
POOL_CAP_KEY = "pool_daily_cap"  # in the community's ChannelSettings.extra
SPENDING_SCAN_LIMIT = 5000  # settled pool reservations read for a per-member breakdown
TAKE_ATTEMPTS = 5  # a take/set races with reservations; re-read the balance this many times


def utcnow() -> datetime:
    return datetime.now(UTC)


class CreditStore(LedgerStore, SettingsStore, Protocol):
    """The part of ``bot.ports.Store`` the credit service uses."""

    async def annotate_reservation(self, reservation_id: str, meta: Mapping[str, Any]) -> None:
        """Merge ``meta`` into an open reservation's meta (proposed ``LedgerStore`` addition)."""


# ---------------------------------------------------------------- the service


class CreditService:
    """Reserve, settle, release, report and administer credits, for every adapter."""

    def __init__(
        self,
        store: CreditStore,
        prices: PriceTable,
        policy: CreditPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        limits: BotLimits | None = None,
        alerts: OwnerAlerts | None = None,
        shared_lock: SharedLock | None = None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.policy = policy
        self._clock = clock
        self.limits = limits or BotLimits()
        self.alerts = alerts or OwnerAlerts(store, policy.admin_ids)
        # Several processes (REDIS_URL): the same check-then-reserve is atomic across them too.
        self._shared_lock = shared_lock
        # One lock per (pool, member) makes "check the daily cap, then reserve" atomic in
        # this process; entries vanish when no request holds them.
        self._pool_locks: weakref.WeakValueDictionary[tuple[Account, Account], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # ------------------------------------------------------------ display

    def format_amount(self, micro: int) -> str:
        return money.format_amount(micro, self.policy.credits_per_dollar)

    def parse_amount(self, text: str) -> int:
        return money.parse_amount(text, self.policy.credits_per_dollar)

    def render_status(self, status: CreditStatus) -> str:
        return texts.render_status(status, self.format_amount, self._clock())

    def render_usage(self, lines: list[UsageLine]) -> str:
        return texts.render_usage(lines, self.format_amount)

    def render_prices(self, lines: list[PriceLine] | None = None) -> str:
        return texts.render_prices(self.price_lines() if lines is None else lines, self.format_amount)

    def render_admin(self, result: AdminResult, action: str) -> str:
        return texts.render_admin(result, action, self.format_amount)

    def render_spending(self, report: CommunitySpending) -> str:
        return texts.render_spending(report, self.format_amount)

    # ------------------------------------------------------------ reserving

    async def reserve_chat(
        self,
        user: Account,
        community: Place | None,
        *,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        reservation_id: str | None = None,
    ) -> Hold:
        """Hold the most this request can cost, or raise ``InsufficientCredits``."""
        metrics.model(model)
        try:
            amount = self.prices.chat_worst_case(model, prompt_tokens, max_completion_tokens)
        except ValueError as exc:
            raise ValidationError(_("There is no price for the chat model {model}.", model=model)) from exc
        meta = {
            "model": model,
            "prompt_tokens_estimate": prompt_tokens,
            "max_completion_tokens": max_completion_tokens,
        }
        return await self._reserve(
            user,
            community,
            amount,
            purpose="chat",
            reason=f"chat {model}",
            meta=meta,
            reservation_id=reservation_id,
        )

    async def reserve_image(
        self, user: Account, community: Place | None, *, model: str, reservation_id: str | None = None
    ) -> Hold:
        """Hold the price of one image, or raise ``InsufficientCredits``."""
        try:
            amount = self.prices.image_cost(model)
        except ValueError as exc:
            raise ValidationError(_("There is no price for the image model {model}.", model=model)) from exc
        return await self._reserve(
            user,
            community,
            amount,
            purpose="image",
            reason=f"image {model}",
            meta={"model": model},
            reservation_id=reservation_id,
        )

    async def _reserve(
        self,
        user: Account,
        community: Place | None,
        amount: int,
        *,
        purpose: str,
        reason: str,
        meta: Mapping[str, Any],
        reservation_id: str | None,
    ) -> Hold:
        if reservation_id is not None and (known := await self.store.get_reservation(reservation_id)):
            if known.state != "open":
                # Returning it would let a request run with nothing held; ids are single-use.
                raise ValueError(f"Reservation {reservation_id} is already {known.state}.")
            return Hold.of(known)  # a retry of a request that already holds its credits
        rid = reservation_id or uuid.uuid4().hex
        now = self._clock()
        allowance = await self._ready(user, now)
        pool = self._pool_account(community)
        pool_status: PoolStatus | None = None
        async with self._pool_lock(pool, user):
            if pool is not None and community is not None:
                pool_status = await self._pool_status(pool, community, user, now)
            for account in self._sources(user, pool, pool_status, amount):
                spender = user if account.is_pool else None
                if await self._reserve_within_limits(
                    rid, account, amount, purpose, reason, spender, meta, now
                ):
                    metrics.held(purpose, amount)
                    if reservation_id is not None:  # a caller's id may race; trust what was stored
                        stored = await self.store.get_reservation(rid)
                        return Hold.of(stored) if stored else Hold(rid, account, amount, purpose, spender)
                    return Hold(rid, account, amount, purpose, spender)
        balance = await self.store.balance(user) or 0
        with privately():  # the balance is the member's alone: shown to them privately
            message = texts.insufficient(
                purpose,
                balance,
                amount,
                allowance,
                self._next_refill(allowance, now),
                pool_status,
                self.format_amount,
                now,
                periods.day_bounds(now, self.policy.tz)[1],
            )
            if balance == 0 and await self._grant_withheld(user):
                message = _(texts.GRANT_WITHHELD) + "\n" + message
        raise InsufficientCredits(message, balance=balance, needed=amount)

    async def _reserve_within_limits(
        self,
        rid: str,
        account: Account,
        amount: int,
        purpose: str,
        reason: str,
        spender: Account | None,
        meta: Mapping[str, Any],
        now: datetime,
    ) -> bool:
        """The store's reserve, moving the bot-wide spending counters in the same transaction."""
        try:
            return await self.store.reserve(
                rid,
                account,
                amount,
                purpose=purpose,
                reason=reason,
                spender=spender,
                meta=meta,
                spending=self.limits.spending(now),
            )
        except SpendingLimitReached as exc:
            refused = refusal(exc, self.limits, now)
            logger.info(
                "refused %s for %s: the %s spending limit is reached", purpose, account, refused.period
            )
            await self.alerts.limit_reached(refused)
            raise refused from None

    async def limits_report(self) -> str:
        """The bot's spending (charged + held) of this UTC day and month against its limits, and grants."""
        now = self._clock()
        lines = []
        for counter, name in zip(self.limits.spending(now), ("today (UTC)", "this month (UTC)"), strict=True):
            spent = self.format_amount(await self.store.counter(counter.key))
            limit = "no limit" if counter.limit is None else f"limit {self.format_amount(counter.limit)}"
            lines.append(f"Spent {name}: {spent} ({limit})")
        grants = self.limits.grants(now)
        if grants is not None:
            lines.append(f"Starting grants today: {await self.store.counter(grants.key)} of {grants.limit}")
        return "\n".join(lines)

    async def _grant_withheld(self, user: Account) -> bool:
        """Whether the user opened on a day whose starting grants were all given already."""
        grants = await self.store.entries(user, limit=5, kinds=("grant",))
        return any(e.meta.get("grant_withheld") for e in grants)

    def _sources(
        self, user: Account, pool: Account | None, pool_status: PoolStatus | None, amount: int
    ) -> list[Account]:
        """The accounts to try, in the configured order; the pool only if it can cover ``amount``."""
        if pool is None or pool_status is None:
            return [user]
        room = pool_status.room_today
        if pool_status.balance < amount or (room is not None and room < amount):
            return [user]
        return [pool, user] if self.policy.pool_order == "pool_first" else [user, pool]

    @contextlib.asynccontextmanager
    async def _pool_lock(self, pool: Account | None, user: Account) -> AsyncIterator[None]:
        if pool is None:
            yield
            return
        lock = self._pool_locks.get((pool, user))
        if lock is None:
            lock = self._pool_locks[(pool, user)] = asyncio.Lock()
        async with lock:
            if self._shared_lock is None:
                yield
                return
            async with self._shared_lock(f"pool:{pool.platform}:{pool.holder}:{user.platform}:{user.holder}"):
                yield

    # ------------------------------------------------------------ settling

    async def note_usage(self, hold: Hold, usage: Usage, *, model: str | None = None) -> None:
        """Record the usage chunk as it arrives, so a crash before settling can still settle exactly."""
        recorded: dict[str, Any] = {
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
            }
        }
        if model is not None:
            recorded["model"] = model
        await self.store.annotate_reservation(hold.reservation_id, recorded)

    async def settle_chat(
        self,
        hold: Hold,
        *,
        model: str,
        usage: Usage | None,
        streamed_text_tokens: int = 0,
        prompt_tokens_estimate: int = 0,
    ) -> int:
        """Charge the exact usage in full, or without one a conservative count; return what was charged.

        The hold is meant to cover the worst case. If the usage ever costs more, that is a bug in
        the estimate (logged as an error, loudly): the difference is taken from the same account's
        balance as far as it goes, rather than silently paid by the owner. 0 if the hold was
        already settled or released.
        """
        if usage is not None:
            cost = self.prices.chat_cost(model, usage)
            prompt, completion = usage.prompt_tokens, usage.completion_tokens
        else:
            prompt, completion = prompt_tokens_estimate, streamed_text_tokens
            cost = self.prices.chat_worst_case(model, prompt, completion)
        meta: dict[str, Any] = {
            "model": model,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "exact": usage is not None,
        }
        if cost > hold.amount:
            meta["over_hold"] = cost - hold.amount
            logger.error(
                "HOLD TOO SMALL: chat %s cost %d but %d was held (reservation %s, prompt %d tokens, "
                "estimated %d); the difference is taken from %s:%s as far as its balance goes",
                model,
                cost,
                hold.amount,
                hold.reservation_id,
                prompt,
                prompt_tokens_estimate,
                hold.account.platform,
                hold.account.holder,
            )
        done = await self.store.settle(hold.reservation_id, cost, reason=f"chat {model}", meta=meta)
        if not done:
            return 0
        if cost <= hold.amount:
            metrics.charged("chat", model, cost, tokens=(prompt, completion))
            return cost
        settled = await self.store.get_reservation(hold.reservation_id)
        charged = cost if settled is None or settled.charged is None else settled.charged
        if charged < cost:
            logger.error(
                "HOLD TOO SMALL: %d of reservation %s could not be covered by the balance",
                cost - charged,
                hold.reservation_id,
            )
        metrics.charged("chat", model, charged, tokens=(prompt, completion))
        return charged

    async def settle_image(self, hold: Hold) -> int:
        """Charge a delivered image; 0 if the hold was already closed."""
        done = await self.store.settle(hold.reservation_id, hold.amount, reason="image", meta={"exact": True})
        metrics.charged("image", "", hold.amount if done else 0)
        return hold.amount if done else 0

    async def release(self, hold: Hold, reason: str = "released") -> bool:
        """Give the whole hold back; False if it was already closed."""
        return await self.store.release(hold.reservation_id, reason=reason)

    # ------------------------------------------------------------ crash recovery

    async def recover(
        self, resolver: Resolver | None = None, reservations: Sequence[Reservation] | None = None
    ) -> RecoveryReport:
        """Settle or release every reservation a previous run left open (or only ``reservations``:
        those this process took over from processes whose lease expired, see ``bot.coordination``).

        ``resolver`` (from the chat and image services) decides per reservation; when it
        returns None, a chat with a recorded usage chunk settles exactly and anything else
        is released. A job the image service will resume must get ``keep``.
        """
        counts = dict.fromkeys(("settled", "released", "kept", "failed", "charged"), 0)
        if reservations is None:
            reservations = await self.store.open_reservations()
        for reservation in reservations:
            try:
                decision = await resolver(reservation) if resolver else None
                await self._apply_decision(
                    reservation, decision or self.default_decision(reservation), counts
                )
            except Exception:
                # One bad reservation must not stop the start-up; it stays open for the next one.
                logger.exception("could not recover reservation %s", reservation.id)
                counts["failed"] += 1
        report = RecoveryReport(**counts)
        logger.info("credit recovery: %s", report)
        return report

    async def _apply_decision(
        self, reservation: Reservation, decision: RecoveryDecision, counts: dict[str, int]
    ) -> None:
        if decision.action == "keep":
            counts["kept"] += 1
        elif decision.action == "settle":
            charged = max(decision.charged, 0)  # over the hold: from the balance, as settle_chat
            meta = {"recovered": True, **decision.meta}
            if await self.store.settle(
                reservation.id, charged, reason=decision.reason or "recovered", meta=meta
            ):
                counts["settled"] += 1
                counts["charged"] += charged
        elif await self.store.release(reservation.id, reason=decision.reason or "recovered"):
            counts["released"] += 1

    def default_decision(self, reservation: Reservation) -> RecoveryDecision:
        """Settle a chat exactly from its recorded usage chunk; release anything else."""
        usage = _recorded_usage(reservation.meta)
        model = reservation.meta.get("model")
        if reservation.purpose != "chat" or usage is None or not isinstance(model, str):
            return RecoveryDecision("release", reason="recovered: no usage was recorded")
        try:
            cost = self.prices.chat_cost(model, usage)
        except ValueError:
            return RecoveryDecision("release", reason=f"recovered: no price for {model}")
        meta = {
            "model": model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "exact": True,
        }
        return RecoveryDecision("settle", charged=cost, reason=f"chat {model} (recovered)", meta=meta)

    # ------------------------------------------------------------ accounts and allowances

    async def allowance(self) -> Allowance:
        """The allowance in force: the owner's stored change, else the configured one."""
        return (await self._owner_choices())[0]

    async def starting_grant(self) -> int:
        return (await self._owner_choices())[1]

    async def _owner_choices(self) -> tuple[Allowance, int]:
        """The allowance and the starting grant in force (the owner's stored changes win), in one read."""
        stored = await self.store.get_meta_many(
            (META_ALLOWANCE, META_ALLOWANCE_CAP, META_ALLOWANCE_PERIOD, META_STARTING_GRANT)
        )
        amount = _meta_int(stored, META_ALLOWANCE, self.policy.allowance)
        cap = _meta_int(stored, META_ALLOWANCE_CAP, self.policy.allowance_cap)
        period_text = stored.get(META_ALLOWANCE_PERIOD)
        period: AllowancePeriod = self.policy.allowance_period
        if period_text in ("none", "daily", "weekly"):
            period = period_text  # type: ignore[assignment]  # narrowed by the check above
        grant = _meta_int(stored, META_STARTING_GRANT, self.policy.starting_grant)
        return Allowance(amount, period, cap), grant

    async def _open(self, account: Account, grant: int | None = None) -> None:
        """Open an account on first sight: a user with the starting grant (``grant`` if the caller
        read it already), a pool empty."""
        if await self.store.balance(account) is not None:
            return
        if account.is_pool:
            grant = 0
        elif grant is None:
            grant = await self.starting_grant()
        cap = self.limits.grants(self._clock()) if grant else None
        await self.store.open_account(account, starting_grant=grant, reason="starting grant", grants=cap)

    async def _ready(self, user: Account, now: datetime) -> Allowance:
        """Open the account if new and add this period's allowance if not yet added."""
        allowance, grant = await self._owner_choices()
        await self._open(user, grant)
        if allowance.active and allowance.period != "none":
            period = periods.period_id(allowance.period, now, self.policy.tz)
            key = f"allowance:{user.platform}:{user.holder}:{period}"
            added = await self.store.top_up(
                user,
                allowance.amount,
                up_to=allowance.cap,
                reason=f"{allowance.period} allowance",
                idempotency_key=key,
            )
            if added:
                logger.debug("allowance %d added to %s", added, user)
        return allowance

    def _next_refill(self, allowance: Allowance, now: datetime) -> datetime | None:
        if not allowance.active or allowance.period == "none":
            return None
        return periods.next_start(allowance.period, now, self.policy.tz)

    # ------------------------------------------------------------ pools

    @staticmethod
    def _pool_account(community: Place | None) -> Account | None:
        return None if community is None else Account.pool(community.platform, community.scope)

    async def pool_cap(self, community: Place) -> int | None:
        """The per-member daily cap of a community's pool (None = no cap)."""
        settings = await self.store.get_settings(community.community)
        value = None if settings is None else settings.extra.get(POOL_CAP_KEY)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    async def _pool_status(
        self, pool: Account, community: Place, user: Account, now: datetime
    ) -> PoolStatus | None:
        balance = await self.store.balance(pool)
        if balance is None:
            return None
        start, end = periods.day_bounds(now, self.policy.tz)
        spent = await self.store.charged_between(pool, start, end, spender=user)
        held = await self.store.held(pool, spender=user)  # open holds count against the cap too
        return PoolStatus(balance, await self.pool_cap(community), spent, held)

    # ------------------------------------------------------------ reports

    async def status(self, user: Account, community: Place | None = None) -> CreditStatus:
        """Balance, today's and this month's spending, the allowance and the pool (for /credits)."""
        now = self._clock()
        allowance = await self._ready(user, now)
        day = periods.day_bounds(now, self.policy.tz)
        month = periods.month_bounds(now, self.policy.tz)
        pool = self._pool_account(community)
        refill = self._next_refill(allowance, now)
        return CreditStatus(
            balance=await self.store.balance(user) or 0,
            spent_today=await self.store.charged_between(user, *day),
            spent_month=await self.store.charged_between(user, *month),
            allowance=(
                AllowanceStatus(allowance.amount, allowance.period, allowance.cap, refill) if refill else None
            ),
            pool=(await self._pool_status(pool, community, user, now) if pool and community else None),
        )

    async def usage(
        self, user: Account, community: Place | None = None, *, limit: int = 10
    ) -> list[UsageLine]:
        """The newest charges of a user, from their own balance and their community's pool (for /usage)."""
        found = await self.store.settled_reservations(user, limit=limit)
        pool = self._pool_account(community)
        if pool is not None:
            found += await self.store.settled_reservations(pool, limit=limit, spender=user)
        found.sort(key=lambda r: r.closed_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return [_usage_line(r) for r in found[:limit]]

    def price_lines(self) -> list[PriceLine]:
        """What each model costs here, markup included (for /prices)."""
        chat = [
            PriceLine(
                model,
                "chat",
                input_per_million=self.prices.chat_worst_case(model, 1_000_000, 0),
                output_per_million=self.prices.chat_worst_case(model, 0, 1_000_000),
            )
            for model in self.prices.chat
        ]
        image = [PriceLine(m, "image", per_image=self.prices.image_cost(m)) for m in self.prices.image]
        return chat + image

    async def community_spending(
        self, actor: Actor, community: Place, since: datetime | None = None
    ) -> CommunitySpending:
        """What a community's members spent from its pool since a moment (default: this month)."""
        self._require(actor, N_("see the community's spending"), community=community)
        now = self._clock()
        start = since or periods.month_bounds(now, self.policy.tz)[0]
        pool = Account.pool(community.platform, community.scope)
        balance = await self.store.balance(pool)
        total = await self.store.charged_between(pool, start, now + _EPSILON)
        recent = await self.store.settled_reservations(pool, limit=SPENDING_SCAN_LIMIT)
        by_member: dict[Account, int] = {}
        for r in recent:
            if r.closed_at is not None and r.closed_at >= start and r.spender is not None:
                by_member[r.spender] = by_member.get(r.spender, 0) + (r.charged or 0)
        ranked = tuple(sorted(by_member.items(), key=lambda item: item[1], reverse=True))
        return CommunitySpending(
            community.community, start, balance, total, ranked, len(recent) < SPENDING_SCAN_LIMIT
        )

    # ------------------------------------------------------------ admin

    def is_owner(self, actor: Actor) -> bool:
        return actor.id in self.policy.admin_ids

    def _require(
        self, actor: Actor, what: str, *, community: Place | None = None, mints: bool = False
    ) -> None:
        """Refuse politely unless the actor may do ``what``.

        Community admins manage their own community; creating money and bot-wide settings
        need the owner unless the policy trusts community admins.
        """
        if self.is_owner(actor):
            return
        if not actor.is_platform_admin or (
            community is not None and community.platform != actor.account.platform
        ):
            raise NotAllowed(_("Only server admins can {what}.", what=_(what)))
        # Everyone administers their own private chat, so only a real community's admin can be
        # trusted to create money, and only when the owner says so.
        real_community = community is not None and not community.is_private
        if mints and not (self.policy.trust_community_admins and real_community):
            raise NotAllowed(_("Only the bot's owner can {what}.", what=_(what)))

    @staticmethod
    def _key(idempotency_key: str | None) -> str:
        return idempotency_key or f"admin:{uuid.uuid4().hex}"

    async def grant(
        self,
        actor: Actor,
        target: Account,
        amount: int,
        reason: str = "",
        *,
        idempotency_key: str | None = None,
        community: Place | None = None,
    ) -> AdminResult:
        """Add credits to a user's balance (or a pool's)."""
        self._require(actor, N_("grant credits"), community=community, mints=True)
        return await self._mint(actor, target, amount, reason or f"granted by {actor.id}", idempotency_key)

    async def _mint(
        self, actor: Actor, target: Account, amount: int, reason: str, idempotency_key: str | None
    ) -> AdminResult:
        """Add new credits to ``target`` (opened first); a repeated idempotency key adds nothing."""
        _positive(amount)
        await self._open(target)
        entry = await self.store.apply(
            target,
            amount,
            kind="grant",
            reason=reason,
            idempotency_key=self._key(idempotency_key),
            meta={"by": actor.id},
        )
        if entry is None:
            return AdminResult(target, 0, await self.store.balance(target) or 0)
        return AdminResult(target, amount, entry.balance_after)

    async def take(
        self,
        actor: Actor,
        target: Account,
        amount: int,
        reason: str = "",
        *,
        idempotency_key: str | None = None,
        community: Place | None = None,
    ) -> AdminResult:
        """Remove up to ``amount``, never below zero; ``changed`` says how much was taken."""
        self._require(actor, N_("take credits"), community=community, mints=True)
        _positive(amount)
        return await self._adjust(
            actor, target, lambda balance: -min(amount, balance), reason, idempotency_key
        )

    async def set_balance(
        self,
        actor: Actor,
        target: Account,
        amount: int,
        reason: str = "",
        *,
        idempotency_key: str | None = None,
        community: Place | None = None,
    ) -> AdminResult:
        """Make a balance exactly ``amount`` (reserved credits stay reserved)."""
        self._require(actor, N_("set balances"), community=community, mints=True)
        if amount < 0:
            raise ValidationError(_("A balance cannot be negative."))
        await self._open(target)
        return await self._adjust(actor, target, lambda balance: amount - balance, reason, idempotency_key)

    async def _adjust(
        self,
        actor: Actor,
        target: Account,
        delta_for: Callable[[int], int],
        reason: str,
        idempotency_key: str | None,
    ) -> AdminResult:
        """Apply a change computed from the current balance, re-reading it if a reservation raced."""
        key = self._key(idempotency_key)
        for _attempt in range(TAKE_ATTEMPTS):
            balance = await self.store.balance(target) or 0
            delta = delta_for(balance)
            if delta == 0:
                return AdminResult(target, 0, balance)
            try:
                entry = await self.store.apply(
                    target,
                    delta,
                    kind="adjust",
                    reason=reason or f"adjusted by {actor.id}",
                    idempotency_key=key,
                    meta={"by": actor.id},
                )
            except InsufficientCredits:
                continue  # spent meanwhile; compute again from the new balance
            if entry is None:
                return AdminResult(target, 0, await self.store.balance(target) or 0)
            return AdminResult(target, delta, entry.balance_after)
        raise InsufficientCredits(_("The balance kept changing; please try again."))

    async def fund_pool(
        self, actor: Actor, community: Place, amount: int, *, idempotency_key: str | None = None
    ) -> AdminResult:
        """Add credits to a community's pool (creating the pool)."""
        self._require(actor, N_("fund the community pool"), community=community, mints=True)
        pool = Account.pool(community.platform, community.scope)
        return await self._mint(actor, pool, amount, f"pool funded by {actor.id}", idempotency_key)

    async def set_pool_cap(self, actor: Actor, community: Place, per_user_daily_cap: int | None) -> None:
        """Limit what each member may spend from the pool per day (None = no limit)."""
        self._require(actor, N_("limit the community pool"), community=community)
        if per_user_daily_cap is not None and per_user_daily_cap < 0:
            raise ValidationError(_("A daily limit cannot be negative."))
        place = community.community
        current = await self.store.get_settings(place) or ChannelSettings()
        extra = {k: v for k, v in current.extra.items() if k != POOL_CAP_KEY}
        if per_user_daily_cap is not None:
            extra[POOL_CAP_KEY] = per_user_daily_cap
        await self.store.put_settings(place, dataclasses.replace(current, extra=extra))

    async def set_starting_grant(self, actor: Actor, amount: int) -> None:
        """Change what new users receive (bot-wide)."""
        self._require(actor, N_("set the starting grant"), mints=True)
        if amount < 0:
            raise ValidationError(_("A starting grant cannot be negative."))
        await self.store.set_meta(META_STARTING_GRANT, str(amount))

    async def set_allowance(
        self, actor: Actor, amount: int, period: str, cap: int | None = None
    ) -> Allowance:
        """Change the periodic allowance (bot-wide); the cap defaults to the amount."""
        self._require(actor, N_("set the allowance"), mints=True)
        if period not in get_args(AllowancePeriod):
            raise ValidationError(_("The allowance period must be none, daily or weekly."))
        cap = amount if cap is None else cap
        if amount < 0 or cap < 0:
            raise ValidationError(_("An allowance cannot be negative."))
        await self.store.set_meta(META_ALLOWANCE, str(amount))
        await self.store.set_meta(META_ALLOWANCE_PERIOD, period)
        await self.store.set_meta(META_ALLOWANCE_CAP, str(cap))
        return await self.allowance()


# ---------------------------------------------------------------- helpers

# charged_between is [start, end); one microsecond past "now" includes what settled just now.
_EPSILON = timedelta(microseconds=1)


def _positive(amount: int) -> None:
    if amount <= 0:
        raise ValidationError(_("The amount must be more than zero."))


def _recorded_usage(meta: Mapping[str, Any]) -> Usage | None:
    raw = meta.get("usage")
    if not isinstance(raw, Mapping):
        return None
    prompt, completion, cached = (
        raw.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "cached_tokens")
    )
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (prompt, completion, cached)
    ):
        return None
    return Usage(prompt, completion, cached)


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage_line(r: Reservation) -> UsageLine:
    model = r.meta.get("model")
    return UsageLine(
        when=r.closed_at,
        purpose=r.purpose,
        model=model if isinstance(model, str) else "",
        prompt_tokens=_optional_int(r.meta.get("prompt_tokens")),
        completion_tokens=_optional_int(r.meta.get("completion_tokens")),
        cost=r.charged or 0,
        exact=bool(r.meta.get("exact", True)),
        from_pool=r.account.is_pool,
    )


def _meta_int(stored: Mapping[str, str], key: str, default: int) -> int:
    """A stored non-negative whole number, or ``default`` (absent or malformed)."""
    text = stored.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        logger.warning("ignoring malformed %s=%r", key, text)
        return default
    return value if value >= 0 else default
