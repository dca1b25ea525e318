"""The credit service against the in-memory store: grants, allowances, pools, settling, recovery, admin."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from bot.credits import (
    CreditPolicy,
    CreditService,
    Hold,
    RecoveryDecision,
)
from bot.errors import ConfigError, InsufficientCredits, NotAllowed, ValidationError
from bot.i18n import using
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ports import Account, Actor, Place, Reservation
from tests.fakes.memory_store import MemoryStore
from tests.fakes.wall_clock import ManualClock

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday
ALICE = Account("telegram", "1")
BOB = Account("telegram", "2")
GROUP = Place("telegram", "-100", "7")
POOL = Account.pool("telegram", "-100")
OWNER = Actor(Account("telegram", "999"))
GROUP_ADMIN = Actor(ALICE, is_platform_admin=True)
MEMBER = Actor(BOB)
MODEL = "gpt-4o-mini"
WORST = 750  # 1000 prompt + 1000 completion tokens of gpt-4o-mini: 150 + 600 micro-dollars


@dataclass
class World:
    clock: ManualClock
    store: MemoryStore
    credits: CreditService


def world(prices: PriceTable | None = None, **policy: object) -> World:
    clock = ManualClock(START)
    store = MemoryStore(clock=clock)
    settings = {"admin_ids": frozenset({"telegram:999"}), **policy}
    credits = CreditService(store, prices or PriceTable(), CreditPolicy(**settings), clock=clock)  # type: ignore[arg-type]
    return World(clock, store, credits)


async def reserve(w: World, user: Account = ALICE, community: Place | None = None, **kw: object) -> Hold:
    args = {"model": MODEL, "prompt_tokens": 1000, "max_completion_tokens": 1000, **kw}
    return await w.credits.reserve_chat(user, community, **args)  # type: ignore[arg-type]


async def balance(w: World, account: Account = ALICE) -> int | None:
    return await w.store.balance(account)


async def assert_ledger_consistent(w: World) -> None:
    for account in w.store.accounts():
        entries = await w.store.entries(account, limit=10**9)
        assert sum(e.amount for e in entries) == await w.store.balance(account)
        assert all(e.balance_after >= 0 for e in entries)


# ---------------------------------------------------------------- starting grant and allowance


async def test_first_sight_opens_the_account_with_the_starting_grant_once() -> None:
    """A new user gets the starting grant exactly once, however many requests they make."""
    w = world(starting_grant=10_000)
    await reserve(w)
    await w.credits.status(ALICE)
    await reserve(w)
    grants = await w.store.entries(ALICE, kinds=["grant"])
    assert [10_000] == [e.amount for e in grants]
    assert 10_000 - 2 * WORST == await balance(w)


async def test_owner_changed_starting_grant_applies_to_new_users() -> None:
    """set_starting_grant overrides the configured grant for users seen afterwards."""
    w = world(starting_grant=1_000)
    await w.credits.status(ALICE)
    await w.credits.set_starting_grant(OWNER, 5_000)
    await w.credits.status(BOB)
    assert (1_000, 5_000) == (await balance(w, ALICE), await balance(w, BOB))


async def test_daily_allowance_refills_lazily_once_per_day() -> None:
    """The allowance is added on the first request of a day, not again the same day, and again the next day."""
    w = world(allowance=1_000, allowance_period="daily", allowance_cap=5_000)
    await w.credits.status(ALICE)
    assert 1_000 == await balance(w)
    hold = await reserve(w, prompt_tokens=0, max_completion_tokens=1000)  # 600
    await w.credits.settle_image(hold)
    await w.credits.status(ALICE)
    assert 400 == await balance(w)
    w.clock.advance(timedelta(hours=11, minutes=59))  # 23:59 the same day
    await w.credits.status(ALICE)
    assert 400 == await balance(w)
    w.clock.advance(timedelta(minutes=1))  # midnight
    await w.credits.status(ALICE)
    assert 1_400 == await balance(w)


async def test_allowance_never_fills_above_the_cap() -> None:
    """A top-up adds only what brings the balance to the cap."""
    w = world(starting_grant=4_500, allowance=1_000, allowance_period="daily", allowance_cap=5_000)
    await w.credits.status(ALICE)
    assert 5_000 == await balance(w)
    w.clock.advance(timedelta(days=1))
    await w.credits.status(ALICE)
    assert 5_000 == await balance(w)


async def test_allowance_at_cap_does_not_refill_later_the_same_day() -> None:
    """A day whose top-up added nothing (balance at cap) still counts as refilled."""
    w = world(starting_grant=5_000, allowance=1_000, allowance_period="daily", allowance_cap=5_000)
    await w.credits.status(ALICE)
    hold = await reserve(w)
    await w.credits.settle_image(hold)
    await w.credits.status(ALICE)
    assert 5_000 - WORST == await balance(w)


async def test_weekly_allowance_refills_on_monday() -> None:
    """A weekly allowance comes once per ISO week; Monday 00:00 starts the next one."""
    w = world(allowance=1_000, allowance_period="weekly", allowance_cap=10_000)
    await w.credits.status(ALICE)  # Sunday: week 47
    w.clock.advance(timedelta(hours=11))  # Sunday 23:00, same week
    await w.credits.status(ALICE)
    assert 1_000 == await balance(w)
    w.clock.advance(timedelta(hours=1))  # Monday 00:00, week 48
    await w.credits.status(ALICE)
    assert 2_000 == await balance(w)


async def test_concurrent_first_requests_refill_once() -> None:
    """Twenty simultaneous first calls open the account and add the allowance once."""
    w = world(starting_grant=300, allowance=1_000, allowance_period="daily", allowance_cap=5_000)
    await asyncio.gather(*(w.credits.status(ALICE) for _ in range(20)))
    assert 1_300 == await balance(w)
    await assert_ledger_consistent(w)


async def test_owner_changes_the_allowance() -> None:
    """set_allowance replaces the configured allowance from the next refill on."""
    w = world(allowance=1_000, allowance_period="daily", allowance_cap=1_000)
    await w.credits.status(ALICE)
    allowance = await w.credits.set_allowance(OWNER, 2_000, "weekly", 3_000)
    assert (2_000, "weekly", 3_000) == (allowance.amount, allowance.period, allowance.cap)
    w.clock.advance(timedelta(days=1))  # Monday
    await w.credits.status(ALICE)
    assert 3_000 == await balance(w)


async def test_set_allowance_refuses_an_unknown_period() -> None:
    """A period other than none/daily/weekly is a ValidationError."""
    w = world()
    with pytest.raises(ValidationError):
        await w.credits.set_allowance(OWNER, 1_000, "hourly")


async def test_policy_refuses_negative_or_unknown_values() -> None:
    """CreditPolicy checks its own values at construction."""
    with pytest.raises(ConfigError):
        CreditPolicy(starting_grant=-1)
    with pytest.raises(ConfigError):
        CreditPolicy(allowance_period="monthly")  # type: ignore[arg-type]


# ---------------------------------------------------------------- reserving


async def test_insufficient_credit_message_names_balance_needed_and_how_to_get_more() -> None:
    """The refusal shows the balance, the needed amount and where more comes from; nothing is held."""
    w = world(starting_grant=500, allowance=100, allowance_period="daily", allowance_cap=500)
    with pytest.raises(InsufficientCredits) as caught:
        await reserve(w)
    message = caught.value.user_message
    assert "$0.0005" in message  # balance
    assert "$0.00075" in message  # needed
    assert "admin" in message
    assert "(next refill in 12 hours, 2026-11-23 00:00 UTC)" in message  # START is 12:00 UTC
    assert (500, WORST) == (caught.value.balance, caught.value.needed)
    assert [] == await w.store.open_reservations()
    assert 500 == await balance(w)


async def test_insufficient_credit_message_in_credits() -> None:
    """With credits_per_dollar set, the refusal speaks in credits."""
    w = world(starting_grant=500, credits_per_dollar=1_000_000)
    with pytest.raises(InsufficientCredits) as caught:
        await reserve(w)
    assert "500 credits" in str(caught.value)
    assert "750 credits" in str(caught.value)


async def test_image_reservation_holds_the_image_price() -> None:
    """reserve_image holds exactly the marked-up image price."""
    w = world(PriceTable().with_overrides(markup=Fraction(3, 2)), starting_grant=10_000)
    hold = await w.credits.reserve_image(ALICE, None, model="realvision")
    assert (2_250, "image") == (hold.amount, hold.purpose)
    assert 10_000 - 2_250 == await balance(w)


async def test_image_reservation_refused_when_short() -> None:
    """An image the balance can't cover raises InsufficientCredits naming the price."""
    w = world(starting_grant=1_000)
    with pytest.raises(InsufficientCredits, match=r"\$0\.0015"):
        await w.credits.reserve_image(ALICE, None, model="realvision")


async def test_unknown_model_is_a_validation_error() -> None:
    """A model without a price can't be reserved."""
    w = world(starting_grant=10_000)
    with pytest.raises(ValidationError):
        await reserve(w, model="gpt-9")
    with pytest.raises(ValidationError):
        await w.credits.reserve_image(ALICE, None, model="nope")


async def test_reserving_again_with_the_same_id_holds_once() -> None:
    """A retried reserve with the same id returns the same hold; a closed id can't be reused."""
    w = world(starting_grant=10_000)
    first = await reserve(w, reservation_id="r1")
    second = await reserve(w, reservation_id="r1")
    assert first == second
    assert 10_000 - WORST == await balance(w)
    await w.credits.release(first, "done")
    with pytest.raises(ValueError, match="already released"):
        await reserve(w, reservation_id="r1")


async def test_hundred_concurrent_reserves_with_balance_for_three_hold_exactly_three() -> None:
    """100 simultaneous worst-case reserves on a balance of exactly 3 worst cases: 3 succeed, 97 are refused."""
    w = world(starting_grant=3 * WORST)
    results = await asyncio.gather(*(reserve(w) for _ in range(100)), return_exceptions=True)
    holds = [r for r in results if isinstance(r, Hold)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (3, 97) == (len(holds), len(refused))
    assert 0 == await balance(w)
    assert 3 == len(await w.store.open_reservations())
    await assert_ledger_consistent(w)


# ---------------------------------------------------------------- settling and releasing


async def test_settle_is_exact_to_the_micro_dollar() -> None:
    """Settling from a usage keeps ceil((prompt*in + completion*out) * markup) and gives back the rest."""
    w = world(PriceTable().with_overrides(markup=Fraction(13, 10)), starting_grant=100_000)
    hold = await reserve(w, model="gpt-4o", prompt_tokens=2000, max_completion_tokens=1000)
    assert 19_500 == hold.amount  # (2000*2.5 + 1000*10) * 1.3
    charged = await w.credits.settle_chat(hold, model="gpt-4o", usage=Usage(1234, 567))
    # 1234*2.5 + 567*10 = 8755; * 1.3 = 11381.5 -> 11382
    assert 11_382 == charged
    assert 100_000 - 11_382 == await balance(w)
    await assert_ledger_consistent(w)


async def test_settle_without_usage_counts_prompt_estimate_and_streamed_tokens() -> None:
    """Without a usage chunk the charge is the prompt estimate plus the streamed tokens at list price."""
    w = world(starting_grant=10_000)
    hold = await reserve(w)
    charged = await w.credits.settle_chat(
        hold, model=MODEL, usage=None, streamed_text_tokens=100, prompt_tokens_estimate=1000
    )
    assert 150 + 60 == charged
    assert 10_000 - 210 == await balance(w)


async def test_settle_charges_usage_above_the_hold_from_the_balance_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A usage above the worst case is charged in full (the balance covers it) and logged as an error."""
    w = world(starting_grant=10_000)
    hold = await reserve(w)
    usage = Usage(3000, 1000)  # 450 + 600 micro-dollars: 300 more than the hold
    with caplog.at_level(logging.ERROR, logger="bot.credits.service"):
        charged = await w.credits.settle_chat(hold, model=MODEL, usage=usage)
    assert 1050 == charged
    assert 10_000 - 1050 == await balance(w)
    assert any("HOLD TOO SMALL" in r.getMessage() for r in caplog.records)


async def test_settle_above_the_hold_never_takes_more_than_the_balance() -> None:
    """An overrun larger than what is left takes what is left, never below zero."""
    w = world(starting_grant=WORST + 100)
    hold = await reserve(w)
    charged = await w.credits.settle_chat(hold, model=MODEL, usage=Usage(50_000, 50_000))
    assert WORST + 100 == charged
    assert 0 == await balance(w)


async def test_settle_twice_charges_once() -> None:
    """The second settle of a hold returns 0 and changes nothing."""
    w = world(starting_grant=10_000)
    hold = await reserve(w)
    assert 210 == await w.credits.settle_chat(hold, model=MODEL, usage=Usage(1000, 100))
    assert 0 == await w.credits.settle_chat(hold, model=MODEL, usage=Usage(1000, 1000))
    assert not await w.credits.release(hold, "late")
    assert 0 == await w.credits.settle_image(hold)
    assert 10_000 - 210 == await balance(w)


async def test_release_gives_everything_back_once() -> None:
    """A release returns the whole hold; a second release or a later settle does nothing."""
    w = world(starting_grant=10_000)
    hold = await reserve(w)
    assert await w.credits.release(hold, "upstream error")
    assert not await w.credits.release(hold, "again")
    assert 0 == await w.credits.settle_chat(hold, model=MODEL, usage=Usage(1000, 1000))
    assert 10_000 == await balance(w)
    reservation = await w.store.get_reservation(hold.reservation_id)
    assert reservation is not None
    assert "released" == reservation.state


async def test_image_settles_at_its_price() -> None:
    """A delivered image keeps the whole image hold."""
    w = world(starting_grant=10_000)
    hold = await w.credits.reserve_image(ALICE, None, model="juggernaut")
    assert 1_500 == await w.credits.settle_image(hold)
    assert 8_500 == await balance(w)


# ---------------------------------------------------------------- crash recovery


async def test_recover_settles_exactly_from_a_recorded_usage_chunk() -> None:
    """A hold whose usage chunk was noted before a crash settles to the micro-dollar at the next start."""
    w = world(PriceTable().with_overrides(markup=Fraction(13, 10)), starting_grant=100_000)
    hold = await reserve(w, model="gpt-4o", prompt_tokens=2000, max_completion_tokens=1000)
    await w.credits.note_usage(hold, model="gpt-4o", usage=Usage(1234, 567))
    restarted = CreditService(w.store, w.credits.prices, w.credits.policy, clock=w.clock)
    report = await restarted.recover()
    assert (1, 0, 11_382) == (report.settled, report.released, report.charged)
    assert 100_000 - 11_382 == await balance(w)
    reservation = await w.store.get_reservation(hold.reservation_id)
    assert reservation is not None
    assert ("settled", 11_382) == (reservation.state, reservation.charged)


async def test_recover_releases_a_hold_without_recorded_usage() -> None:
    """A chat hold with nothing recorded, and an image hold, are released at the next start."""
    w = world(starting_grant=100_000)
    await reserve(w)
    await w.credits.reserve_image(ALICE, None, model="realvision")
    report = await w.credits.recover()
    assert (0, 2) == (report.settled, report.released)
    assert 100_000 == await balance(w)
    assert [] == await w.store.open_reservations()


async def test_recover_follows_the_resolver_and_keeps_resumed_jobs_open() -> None:
    """The resolver's settle, release and keep are applied; None falls back to the default rule."""
    w = world(starting_grant=100_000)
    image = await w.credits.reserve_image(ALICE, None, model="realvision")
    chat_settle = await reserve(w)
    chat_default = await reserve(w)

    async def resolver(reservation: Reservation) -> RecoveryDecision | None:
        if reservation.id == image.reservation_id:
            return RecoveryDecision("keep")
        if reservation.id == chat_settle.reservation_id:
            return RecoveryDecision("settle", charged=300, reason="answer was stored")
        return None

    report = await w.credits.recover(resolver)
    assert (1, 1, 1, 300) == (report.settled, report.released, report.kept, report.charged)
    assert [image.reservation_id] == [r.id for r in await w.store.open_reservations()]
    assert 100_000 - 1_500 - 300 == await balance(w)
    assert chat_default.reservation_id not in {r.id for r in await w.store.open_reservations()}


async def test_recover_survives_a_failing_resolver() -> None:
    """A resolver error counts as failed, leaves that hold open, and the others are still resolved."""
    w = world(starting_grant=100_000)
    bad = await reserve(w)
    await reserve(w)

    async def resolver(reservation: Reservation) -> RecoveryDecision | None:
        if reservation.id == bad.reservation_id:
            raise RuntimeError("job store unreadable")
        return None

    report = await w.credits.recover(resolver)
    assert (1, 1) == (report.failed, report.released)
    assert [bad.reservation_id] == [r.id for r in await w.store.open_reservations()]


# ---------------------------------------------------------------- pools


async def funded_pool(w: World, amount: int = 100_000, cap: int | None = None) -> None:
    await w.credits.fund_pool(OWNER, GROUP, amount)
    if cap is not None:
        await w.credits.set_pool_cap(OWNER, GROUP, cap)


async def test_pool_first_spends_from_the_pool() -> None:
    """With pool_first, a member's request is held on the community pool, with the member as spender."""
    w = world(starting_grant=10_000, pool_order="pool_first")
    await funded_pool(w)
    hold = await reserve(w, community=GROUP)
    assert (POOL, ALICE) == (hold.account, hold.spender)
    assert (10_000, 100_000 - WORST) == (await balance(w), await balance(w, POOL))


async def test_own_first_spends_own_balance_then_the_pool() -> None:
    """With own_first, the member's balance pays while it can, then the pool."""
    w = world(starting_grant=WORST, pool_order="own_first")
    await funded_pool(w)
    first = await reserve(w, community=GROUP)
    second = await reserve(w, community=GROUP)
    assert (ALICE, POOL) == (first.account, second.account)


async def test_empty_pool_falls_back_to_own_balance() -> None:
    """A pool that can't cover the worst case is skipped."""
    w = world(starting_grant=10_000)
    await funded_pool(w, amount=WORST - 1)
    hold = await reserve(w, community=GROUP)
    assert ALICE == hold.account


async def test_daily_cap_falls_back_to_own_balance_until_tomorrow() -> None:
    """Past the per-member daily cap the own balance pays; the next day the pool pays again."""
    w = world(starting_grant=10_000)
    await funded_pool(w, cap=2 * WORST)
    for _ in range(2):
        await w.credits.settle_image(await reserve(w, community=GROUP))
    third = await reserve(w, community=GROUP)
    assert ALICE == third.account
    other_member = await reserve(w, BOB, GROUP)
    assert POOL == other_member.account  # the cap is per member
    w.clock.advance(timedelta(days=1))
    assert POOL == (await reserve(w, community=GROUP)).account


async def test_open_pool_holds_count_against_the_daily_cap() -> None:
    """Holds not yet settled use up the cap, so simultaneous requests can't exceed it."""
    w = world(starting_grant=100_000)
    await funded_pool(w, cap=2 * WORST)
    holds = await asyncio.gather(*(reserve(w, community=GROUP) for _ in range(20)))
    assert 2 == sum(h.account == POOL for h in holds)
    await assert_ledger_consistent(w)


async def test_refusal_mentions_a_used_up_pool_limit() -> None:
    """When neither the pool (cap reached) nor the balance covers it, the message says so."""
    w = world(starting_grant=0)
    await funded_pool(w, cap=WORST)
    await w.credits.settle_image(await reserve(w, community=GROUP))
    with pytest.raises(InsufficientCredits, match="pool limit for today") as refused:
        await reserve(w, community=GROUP)
    # the clock says 2026-11-22 12:00 UTC: the pool's day starts again at midnight
    assert "is used up; it starts again in 12 hours." in refused.value.user_message
    with using("tr"), pytest.raises(InsufficientCredits) as refused:
        await reserve(w, community=GROUP)
    assert "doldu; 12 saat sonra yenilenir." in refused.value.user_message


async def test_no_pool_means_own_balance() -> None:
    """In a community whose pool was never funded, the own balance pays."""
    w = world(starting_grant=10_000)
    hold = await reserve(w, community=GROUP)
    assert (ALICE, None) == (hold.account, hold.spender)


async def test_community_spending_breaks_the_pool_down_by_member() -> None:
    """community_spending totals pool charges since a moment, biggest spender first."""
    w = world(starting_grant=0)
    await funded_pool(w)
    await w.credits.settle_image(await reserve(w, ALICE, GROUP))
    await w.credits.settle_image(await reserve(w, BOB, GROUP))
    await w.credits.settle_image(await reserve(w, BOB, GROUP))
    report = await w.credits.community_spending(GROUP_ADMIN, GROUP)
    assert 3 * WORST == report.total
    assert ((BOB, 2 * WORST), (ALICE, WORST)) == report.by_member
    assert 100_000 - 3 * WORST == report.pool_balance
    assert "$0.00225" in w.credits.render_spending(report)


# ---------------------------------------------------------------- admin


async def test_non_admins_are_refused_politely() -> None:
    """A member who is neither a platform admin nor listed gets NotAllowed for every admin operation."""
    w = world()
    operations = [
        w.credits.grant(MEMBER, ALICE, 100),
        w.credits.take(MEMBER, ALICE, 100),
        w.credits.set_balance(MEMBER, ALICE, 100),
        w.credits.fund_pool(MEMBER, GROUP, 100),
        w.credits.set_pool_cap(MEMBER, GROUP, 100),
        w.credits.set_starting_grant(MEMBER, 100),
        w.credits.set_allowance(MEMBER, 100, "daily"),
        w.credits.community_spending(MEMBER, GROUP),
    ]
    for operation in operations:
        with pytest.raises(NotAllowed, match="Only server admins can"):
            await operation
    assert [] == w.store.accounts()


async def test_community_admins_manage_the_pool_cap_but_do_not_mint_by_default() -> None:
    """A platform admin may limit their pool and see spending, but creating money needs the owner."""
    w = world()
    await w.credits.set_pool_cap(GROUP_ADMIN, GROUP, 1_000)
    assert 1_000 == await w.credits.pool_cap(GROUP)
    with pytest.raises(NotAllowed, match="owner"):
        await w.credits.grant(GROUP_ADMIN, ALICE, 1_000)
    with pytest.raises(NotAllowed, match="owner"):
        await w.credits.fund_pool(GROUP_ADMIN, GROUP, 1_000)


async def test_trusted_community_admins_may_grant() -> None:
    """With trust_community_admins, a community admin's grant given in their community goes through."""
    w = world(trust_community_admins=True)
    result = await w.credits.grant(GROUP_ADMIN, BOB, 1_000, community=GROUP)
    assert (1_000, 1_000) == (result.changed, result.balance)


async def test_a_private_chat_admin_can_never_mint_even_when_admins_are_trusted() -> None:
    """Everyone administers their own DM, so a grant from one (or from nowhere) needs the owner."""
    w = world(trust_community_admins=True)
    dm = Place(GROUP.platform, f"dm:{BOB.holder}")
    with pytest.raises(NotAllowed):
        await w.credits.grant(Actor(BOB, is_platform_admin=True), BOB, 1_000, community=dm)
    with pytest.raises(NotAllowed):
        await w.credits.grant(GROUP_ADMIN, BOB, 1_000)
    assert 0 == (await w.store.balance(BOB) or 0)


async def test_admins_of_another_platform_cannot_manage_a_community() -> None:
    """A Discord admin can't set the cap of a Telegram group's pool."""
    w = world()
    with pytest.raises(NotAllowed):
        await w.credits.set_pool_cap(Actor(Account("discord", "5"), is_platform_admin=True), GROUP, 1)


async def test_grant_opens_the_account_with_its_starting_grant_first() -> None:
    """A grant to a user never seen adds to their starting grant."""
    w = world(starting_grant=1_000)
    result = await w.credits.grant(OWNER, BOB, 500, "welcome")
    assert (500, 1_500) == (result.changed, result.balance)
    assert "Granted: $0.0005. User 2 now has $0.0015." == w.credits.render_admin(result, "granted")


async def test_grant_with_a_repeated_key_applies_once() -> None:
    """Two grants under the same idempotency key add once."""
    w = world()
    await w.credits.grant(OWNER, BOB, 500, idempotency_key="cli-1")
    again = await w.credits.grant(OWNER, BOB, 500, idempotency_key="cli-1")
    assert (0, 500) == (again.changed, again.balance)


async def test_take_never_goes_below_zero_and_says_how_much_was_taken() -> None:
    """Taking more than the balance takes the balance."""
    w = world(starting_grant=1_000)
    await reserve(w, prompt_tokens=0, max_completion_tokens=1000)  # holds 600
    result = await w.credits.take(OWNER, ALICE, 5_000)
    assert (-400, 0) == (result.changed, result.balance)
    assert "Taken: $0.0004. User 1 now has $0.00." == w.credits.render_admin(result, "taken")
    await assert_ledger_consistent(w)


async def test_set_balance_sets_it_exactly() -> None:
    """set_balance moves the balance up or down to the given amount."""
    w = world(starting_grant=1_000)
    raised = await w.credits.set_balance(OWNER, ALICE, 5_000)
    assert "User 1 now has $0.0050 (was $0.0010)." == w.credits.render_admin(raised, "set")
    assert 0 == (await w.credits.set_balance(OWNER, ALICE, 0)).balance
    entries = await w.store.entries(ALICE, kinds=["adjust"])
    assert [-5_000, 4_000] == [e.amount for e in entries]


async def test_admin_amounts_must_be_positive() -> None:
    """Granting zero or taking a negative amount is a ValidationError."""
    w = world()
    with pytest.raises(ValidationError):
        await w.credits.grant(OWNER, ALICE, 0)
    with pytest.raises(ValidationError):
        await w.credits.take(OWNER, ALICE, -1)
    with pytest.raises(ValidationError):
        await w.credits.set_balance(OWNER, ALICE, -1)


# ---------------------------------------------------------------- reports


async def test_status_shows_spending_allowance_and_pool() -> None:
    """status reports balance, today's and the month's spending, the allowance and the pool."""
    w = world(starting_grant=10_000, allowance=100, allowance_period="daily", allowance_cap=20_000)
    await funded_pool(w, cap=5_000)
    await w.credits.settle_chat(await reserve(w), model=MODEL, usage=Usage(1000, 100))  # own: 210
    w.clock.advance(timedelta(days=1))
    await w.credits.settle_image(await reserve(w, community=GROUP))  # pool_first: 750 from the pool
    await w.credits.settle_chat(await reserve(w, prompt_tokens=0), model=MODEL, usage=Usage(0, 10))  # own: 6
    status = await w.credits.status(ALICE, GROUP)
    assert (10_000 + 100 + 100 - 210 - 6, 6, 216) == (status.balance, status.spent_today, status.spent_month)
    assert status.allowance is not None
    assert datetime(2026, 11, 24, tzinfo=UTC) == status.allowance.next_refill
    assert status.pool is not None
    assert (100_000 - WORST, 5_000, WORST) == (
        status.pool.balance,
        status.pool.daily_cap,
        status.pool.spent_today,
    )
    text = w.credits.render_status(status)
    assert "Balance: $0.009984" in text
    assert "next refill in 12 hours, 2026-11-24 00:00 UTC" in text  # the clock: 2026-11-23 12:00
    with using("tr"):
        assert "(sonraki yükleme 12 saat sonra, 24 Kas 2026 00:00 UTC)" in w.credits.render_status(status)
    with using("nb"):
        assert "(neste påfyll om 12 timer, 24. nov. 2026 00:00 UTC)" in w.credits.render_status(status)


async def test_usage_lists_the_latest_charges_newest_first() -> None:
    """usage shows model, tokens and cost of settled charges, pool charges marked, newest first."""
    w = world(starting_grant=10_000)
    await funded_pool(w)
    await w.credits.settle_chat(await reserve(w), model=MODEL, usage=Usage(1000, 100))
    w.clock.advance(timedelta(minutes=1))
    await w.credits.settle_image(await w.credits.reserve_image(ALICE, GROUP, model="realvision"))
    await w.credits.release(await reserve(w), "failed")  # released: not a charge
    lines = await w.credits.usage(ALICE, GROUP)
    assert [("image", 1_500, True), ("chat", 210, False)] == [(u.purpose, u.cost, u.from_pool) for u in lines]
    assert (MODEL, 1000, 100) == (lines[1].model, lines[1].prompt_tokens, lines[1].completion_tokens)
    text = w.credits.render_usage(lines)
    assert "gpt-4o-mini, 1000 in / 100 out tokens" in text
    assert "(community pool)" in text


async def test_prices_include_the_markup() -> None:
    """price_lines show marked-up prices per 1M tokens and per image."""
    w = world(PriceTable().with_overrides(markup=2))
    lines = {line.model: line for line in w.credits.price_lines()}
    assert (300_000, 1_200_000) == (lines[MODEL].input_per_million, lines[MODEL].output_per_million)
    assert 3_000 == lines["realvision"].per_image
    text = w.credits.render_prices()
    assert "gpt-4o-mini: $0.3000 / $1.20" in text
    assert "Images: $0.0030 each" in text
