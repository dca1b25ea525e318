"""Bot-wide limits in the credit service: spending per day and month, grants per day, owner alerts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.credits import CreditPolicy, CreditService
from bot.credits.limits import BotLimits, OwnerAlerts
from bot.credits.texts import GRANT_WITHHELD
from bot.errors import (
    AuthenticationError,
    InsufficientCredits,
    PaymentRequired,
    ServiceUnavailable,
    SpendingLimitReached,
)
from bot.i18n import using
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ports import Account
from tests.fakes.memory_store import MemoryStore
from tests.fakes.wall_clock import ManualClock

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MODEL = "gpt-4o-mini"
WORST = 750  # 1000 prompt + 1000 completion tokens of gpt-4o-mini
OWNERS = frozenset({"telegram:900", "telegram:901", "discord:902", "cli:owner"})


class Inbox:
    """A ``PrivateMessenger`` that keeps what it was asked to send; ``unreachable`` holders refuse."""

    def __init__(self, unreachable: frozenset[str] = frozenset()) -> None:
        self.sent: list[tuple[str, str]] = []
        self.unreachable = unreachable

    async def send_private(self, holder: str, text: str) -> bool:
        if holder in self.unreachable:
            return False
        self.sent.append((holder, text))
        return True


def service(
    store: MemoryStore, clock: ManualClock, limits: BotLimits, *, grant: int = 10_000
) -> tuple[CreditService, Inbox]:
    credits = CreditService(
        store,
        PriceTable(),
        CreditPolicy(starting_grant=grant, admin_ids=OWNERS),
        clock=clock,
        limits=limits,
    )
    inbox = Inbox(unreachable=frozenset({"901"}))
    credits.alerts.register("telegram", inbox)
    return credits, inbox


async def reserve(credits: CreditService, user: Account) -> bool:
    try:
        await credits.reserve_chat(user, None, model=MODEL, prompt_tokens=1000, max_completion_tokens=1000)
    except SpendingLimitReached:
        return False
    return True


async def test_concurrent_requests_never_pass_the_daily_limit_and_owners_are_alerted_once() -> None:
    """100 members at once under a limit of 7 worst cases: 7 holds, 93 refusals, one alert per owner."""
    clock = ManualClock(START)
    credits, inbox = service(MemoryStore(clock=clock), clock, BotLimits(daily_spending=7 * WORST + 10))
    members = [Account("telegram", str(i)) for i in range(100)]

    results = await asyncio.gather(*(reserve(credits, m) for m in members))

    assert 7 == sum(results)
    # telegram:901 never opened a private chat; discord and cli have no messenger registered.
    assert ["900"] == [holder for holder, _ in inbox.sent]
    assert "daily spending limit" in inbox.sent[0][1]
    assert "SPENDING_LIMIT_DAILY_USD" in inbox.sent[0][1]


async def test_the_refusal_says_when_to_come_back_and_names_no_amount() -> None:
    """A member reads which limit it is and when it resets; nothing about money."""
    clock = ManualClock(START)
    credits, _ = service(MemoryStore(clock=clock), clock, BotLimits(monthly_spending=WORST - 1))

    with pytest.raises(SpendingLimitReached) as refused:
        await credits.reserve_chat(
            Account("telegram", "1"), None, model=MODEL, prompt_tokens=1000, max_completion_tokens=1000
        )

    assert "month" == refused.value.period
    assert "monthly spending limit" in str(refused.value)
    # START is 2026-11-30 12:00 UTC: the month's counter starts again 12 hours later
    assert "Please try again in 12 hours (after 2026-12-01 00:00 UTC)." in str(refused.value)
    assert "$" not in str(refused.value)


async def test_settled_charges_count_and_unused_holds_come_back() -> None:
    """The limit counts what was charged plus what is held: a settled request frees its unused rest."""
    clock = ManualClock(START)
    credits, _ = service(MemoryStore(clock=clock), clock, BotLimits(daily_spending=2 * WORST + 100))
    alice, bob, carol = (Account("telegram", n) for n in ("1", "2", "3"))
    first = await credits.reserve_chat(
        alice, None, model=MODEL, prompt_tokens=1000, max_completion_tokens=1000
    )
    await credits.reserve_chat(bob, None, model=MODEL, prompt_tokens=1000, max_completion_tokens=1000)
    assert not await reserve(credits, carol)

    await credits.settle_chat(first, model=MODEL, usage=Usage(10, 10))

    assert await reserve(credits, carol)


async def test_a_new_day_has_a_new_limit_and_a_new_alert() -> None:
    """The daily counter and its alert are per UTC day."""
    clock = ManualClock(START)
    credits, inbox = service(MemoryStore(clock=clock), clock, BotLimits(daily_spending=WORST))
    assert await reserve(credits, Account("telegram", "1"))
    assert not await reserve(credits, Account("telegram", "2"))
    assert not await reserve(credits, Account("telegram", "3"))

    clock.advance(timedelta(days=1))

    assert await reserve(credits, Account("telegram", "2"))
    assert not await reserve(credits, Account("telegram", "3"))
    assert 2 == len(inbox.sent)


async def test_a_restarted_bot_does_not_alert_again() -> None:
    """The alert is claimed in the store: a new service on the same store stays quiet."""
    clock = ManualClock(START)
    store = MemoryStore(clock=clock)
    credits, inbox = service(store, clock, BotLimits(daily_spending=WORST))
    assert await reserve(credits, Account("telegram", "1"))
    assert not await reserve(credits, Account("telegram", "2"))

    restarted, second_inbox = service(store, clock, BotLimits(daily_spending=WORST))
    assert not await reserve(restarted, Account("telegram", "3"))

    assert 1 == len(inbox.sent)
    assert [] == second_inbox.sent


async def test_newcomers_past_the_daily_grant_cap_start_at_zero_and_are_told() -> None:
    """Under NEW_USER_GRANTS_PER_DAY=2, the third newcomer of the day starts at 0 and reads why."""
    clock = ManualClock(START)
    credits, _ = service(MemoryStore(clock=clock), clock, BotLimits(grants_per_day=2))
    first, second, third = (Account("telegram", n) for n in ("1", "2", "3"))

    assert await reserve(credits, first)
    assert await reserve(credits, second)
    with pytest.raises(InsufficientCredits) as refused:
        await credits.reserve_chat(third, None, model=MODEL, prompt_tokens=1000, max_completion_tokens=1000)

    assert GRANT_WITHHELD in str(refused.value)
    assert 0 == await credits.store.balance(third)
    clock.advance(timedelta(days=1))
    assert await reserve(credits, Account("telegram", "4"))  # a new day, new grants


async def test_upstream_refusals_alert_once_per_kind_per_day() -> None:
    """402 alerts the owners once a day; other upstream errors alert nobody."""
    store = MemoryStore()
    alerts = OwnerAlerts(store, frozenset({"telegram:900"}))
    inbox = Inbox()
    alerts.register("telegram", inbox)

    sent = [await alerts.upstream_refused(PaymentRequired(status=402), START) for _ in range(3)]
    await alerts.upstream_refused(ServiceUnavailable(status=503), START)

    assert [1, 0, 0] == sent
    assert "top up" in inbox.sent[0][1]
    assert 1 == await alerts.upstream_refused(PaymentRequired(status=402), START + timedelta(days=1))


async def test_a_refused_key_is_its_own_alert() -> None:
    """401/403 alerts once too, separately from an empty balance, and names the key setting."""
    alerts = OwnerAlerts(MemoryStore(), frozenset({"telegram:900"}))
    inbox = Inbox()
    alerts.register("telegram", inbox)

    sent = [
        await alerts.upstream_refused(AuthenticationError(status=403), START),
        await alerts.upstream_refused(AuthenticationError(status=401), START),
        await alerts.upstream_refused(PaymentRequired(status=402), START),
    ]

    assert [1, 0, 1] == sent
    assert "MINITOOLAI_API_KEY" in inbox.sent[0][1]
    assert "(403)" in inbox.sent[0][1]


async def test_the_daily_refusal_says_in_how_many_hours_in_each_language() -> None:
    """A fixed clock: 2026-11-30 12:00 UTC, the day's counter starts again at midnight, 12 hours later."""
    clock = ManualClock(START)
    credits, _ = service(MemoryStore(clock=clock), clock, BotLimits(daily_spending=WORST - 1))
    said = {}
    for language in ("en", "tr", "nb"):
        with using(language), pytest.raises(SpendingLimitReached) as refused:
            await credits.reserve_chat(
                Account("telegram", "1"), None, model=MODEL, prompt_tokens=1000, max_completion_tokens=1000
            )
        said[language] = str(refused.value)
    assert "Please try again in 12 hours (after 2026-12-01 00:00 UTC)." in said["en"]
    assert "Lütfen 12 saat sonra tekrar dene (1 Ara 2026 00:00 UTC'den sonra)." in said["tr"]
    assert "Prøv igjen om 12 timer (etter 1. des. 2026 00:00 UTC)." in said["nb"]
