"""Telegram Stars payments on each store backend: credited once, refunded once, the ledger always exact.

Every test runs on SQLite and PostgreSQL (the ``store`` fixture), through the real
``StarsService`` over the real store; only Telegram's side of a refund is a small stand-in here
(the end-to-end tests drive the real one through the fake Bot API).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.credits import CreditPolicy, CreditService
from bot.errors import NotAllowed, ValidationError
from bot.minitoolai.prices import PriceTable
from bot.payments import texts
from bot.payments.payload import derive_key
from bot.payments.service import INVOICE_TTL, StarsService
from bot.payments.values import AlreadyRefunded, PaidStars, RefundRefused, StarPayment, StarsOffer
from bot.ports import Account, Actor, Store
from storage.payments import purchase_key

ALICE = Account("telegram", "1001")
BOB = Account("telegram", "1002")
OWNER = Actor(Account("telegram", "1"))
PER_STAR = 13_000  # $0.013
KEY = derive_key("123:token")
GRANT = 250_000


class Refunds:
    """Telegram's side of a refund: records calls; ``answer`` decides what Telegram says."""

    def __init__(self, answer: Exception | None = None) -> None:
        self.calls: list[tuple[Account, str]] = []
        self.answer = answer

    async def refund(self, member: Account, charge_id: str) -> None:
        self.calls.append((member, charge_id))
        if self.answer is not None:
            raise self.answer


def service(
    store: Store, *, blocked: frozenset[Account] = frozenset(), clock: Callable[[], datetime] | None = None
) -> StarsService:
    credits = CreditService(
        store, PriceTable(), CreditPolicy(starting_grant=GRANT, admin_ids=frozenset({OWNER.id}))
    )

    async def is_allowed(member: Account) -> bool:
        return member not in blocked

    extra = {"clock": clock} if clock else {}
    return StarsService(store, credits, StarsOffer((50, 100), PER_STAR), KEY, is_allowed=is_allowed, **extra)


class Told(list[str]):
    """What the member was told."""

    async def __call__(self, text: str) -> None:
        self.append(text)


async def assert_ledger_exact(store: Store, account: Account) -> None:
    entries = await store.entries(account, limit=10_000)
    assert await store.balance(account) == sum(e.amount for e in entries)


def paid(payload: str, charge: str = "charge-1", stars: int = 50) -> PaidStars:
    return PaidStars(charge_id=charge, currency="XTR", total=stars, payload=payload, provider_charge_id="")


async def test_a_payment_delivered_twice_credits_once(store: Store) -> None:
    """The same charge id received twice adds the credit once; the ledger sum equals the balance."""
    stars = service(store)
    invoice = stars.invoice(ALICE, 50)

    first = await stars.receive(ALICE, paid(invoice.payload), Told())
    await assert_ledger_exact(store, ALICE)
    again = await stars.receive(ALICE, paid(invoice.payload), Told())

    assert first.new and not again.new
    assert GRANT + 50 * PER_STAR == await store.balance(ALICE)
    purchases = await store.entries(ALICE, kinds=["purchase"])
    assert [purchase_key("charge-1")] == [e.idempotency_key for e in purchases]
    await assert_ledger_exact(store, ALICE)


async def test_the_member_is_told_once_and_again_only_if_the_message_failed(store: Store) -> None:
    """A repeat after a sent confirmation says nothing; after a failed send it tells the member then."""
    stars = service(store)
    payload = stars.invoice(ALICE, 100).payload

    async def fails(text: str) -> None:
        raise ConnectionError("Telegram unreachable")

    with pytest.raises(ConnectionError):
        await stars.receive(ALICE, paid(payload, stars=100), fails)
    told, again = Told(), Told()
    await stars.receive(ALICE, paid(payload, stars=100), told)
    await stars.receive(ALICE, paid(payload, stars=100), again)

    assert 1 == len(told)
    assert "$1.30 added for 100" in told[0]
    assert "Your balance: $1.55" in told[0]
    assert [] == again
    assert GRANT + 1_300_000 == await store.balance(ALICE)


async def test_two_deliveries_at_once_credit_once_and_tell_once(store: Store) -> None:
    """The same payment received twice concurrently in one process: one credit, one message."""
    stars = service(store)
    payload = stars.invoice(ALICE, 50).payload
    told = Told()

    results = await asyncio.gather(*(stars.receive(ALICE, paid(payload), told) for _ in range(2)))

    assert [True, False] == sorted(r.new for r in results)[::-1]
    assert 1 == len(told)
    assert GRANT + 50 * PER_STAR == await store.balance(ALICE)
    await assert_ledger_exact(store, ALICE)


async def test_pre_checkout_refuses_what_is_not_an_offer_for_this_member(store: Store) -> None:
    """Unknown, another member's, a tampered amount or currency, expired and blocked payloads are refused."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    moment = [now]
    stars = service(store, blocked=frozenset({BOB}), clock=lambda: moment[0])
    alices = stars.invoice(ALICE, 50).payload
    bobs = stars.invoice(BOB, 50).payload

    assert None is await stars.check(ALICE, alices, "XTR", 50)
    assert texts.REFUSED_UNKNOWN == await stars.check(
        ALICE, "stars1.50.650000.telegram.1001.9999999999.ab.x", "XTR", 50
    )
    assert texts.REFUSED_UNKNOWN == await stars.check(ALICE, alices.replace(".50.", ".5.", 1), "XTR", 5)
    assert texts.REFUSED_OTHER_MEMBER == await stars.check(ALICE, bobs, "XTR", 50)
    assert texts.REFUSED_AMOUNT == await stars.check(ALICE, alices, "XTR", 1)
    assert texts.REFUSED_AMOUNT == await stars.check(ALICE, alices, "USD", 50)
    assert texts.REFUSED_NOT_ALLOWED == await stars.check(BOB, bobs, "XTR", 50)
    moment[0] = now + INVOICE_TTL + timedelta(seconds=1)
    assert texts.REFUSED_EXPIRED == await stars.check(ALICE, alices, "XTR", 50)


async def test_a_refund_takes_the_credit_back_once(store: Store) -> None:
    """The credit goes (one ledger entry), Telegram is asked once; a second refund changes nothing."""
    stars = service(store)
    await stars.receive(ALICE, paid(stars.invoice(ALICE, 50).payload), Told())
    refunds = Refunds()

    text = await stars.refund(OWNER, ALICE, "charge-1", refunds)
    await assert_ledger_exact(store, ALICE)
    again = await stars.refund(OWNER, ALICE, "charge-1", refunds)

    assert "Refunded 50" in text
    assert "already refunded" in again
    assert [(ALICE, "charge-1")] == refunds.calls
    assert GRANT == await store.balance(ALICE)
    assert [-50 * PER_STAR] == [e.amount for e in await store.entries(ALICE, kinds=["refund"])]
    stored = await store.get_star_payment("charge-1")  # type: ignore[attr-defined]
    assert isinstance(stored, StarPayment)
    assert ("refunded", 50 * PER_STAR) == (stored.refund_state, stored.refund_taken)
    await assert_ledger_exact(store, ALICE)


async def test_a_refund_of_spent_credit_is_refused_unless_forced(store: Store) -> None:
    """Spent below the payment's credit: refused with the reason, nothing changes; forced takes what is left."""
    stars = service(store)
    await stars.receive(ALICE, paid(stars.invoice(ALICE, 100).payload, stars=100), Told())
    await store.apply(ALICE, -(GRANT + 100_000), kind="adjust", reason="spent", idempotency_key="spend")
    refunds = Refunds()

    with pytest.raises(ValidationError, match="part of it was spent"):
        await stars.refund(OWNER, ALICE, "charge-1", refunds)
    assert [] == refunds.calls
    assert 1_200_000 == await store.balance(ALICE)
    await assert_ledger_exact(store, ALICE)

    await stars.refund(OWNER, ALICE, "charge-1", refunds, force=True)

    assert 0 == await store.balance(ALICE)
    assert [(ALICE, "charge-1")] == refunds.calls
    await assert_ledger_exact(store, ALICE)


async def test_a_refund_telegram_refuses_gives_the_credit_back(store: Store) -> None:
    """Telegram says no: the credit returns; a later attempt Telegram already did is finished without a second take."""
    stars = service(store)
    await stars.receive(ALICE, paid(stars.invoice(ALICE, 50).payload), Told())

    with pytest.raises(ValidationError, match="Telegram refused the refund"):
        await stars.refund(OWNER, ALICE, "charge-1", Refunds(RefundRefused("CHARGE_NOT_FOUND")))
    assert GRANT + 50 * PER_STAR == await store.balance(ALICE)
    await assert_ledger_exact(store, ALICE)

    await stars.refund(OWNER, ALICE, "charge-1", Refunds(AlreadyRefunded("CHARGE_ALREADY_REFUNDED")))

    assert GRANT == await store.balance(ALICE)
    await assert_ledger_exact(store, ALICE)


async def test_a_refund_whose_outcome_is_unknown_is_finished_by_running_it_again(store: Store) -> None:
    """A network failure leaves the refund pending (credit taken once); the next run only asks Telegram again."""
    stars = service(store)
    await stars.receive(ALICE, paid(stars.invoice(ALICE, 50).payload), Told())

    with pytest.raises(Exception, match="Run the same refund again"):
        await stars.refund(OWNER, ALICE, "charge-1", Refunds(ConnectionError("reset")))
    assert GRANT == await store.balance(ALICE)
    refunds = Refunds()
    await stars.refund(OWNER, ALICE, "charge-1", refunds)

    assert GRANT == await store.balance(ALICE)
    assert 1 == len(await store.entries(ALICE, kinds=["refund"]))
    assert 1 == len(refunds.calls)
    await assert_ledger_exact(store, ALICE)


async def test_only_the_owner_refunds_and_only_the_payer_s_payment(store: Store) -> None:
    """A member cannot refund; a charge id under another member is not found."""
    stars = service(store)
    await stars.receive(ALICE, paid(stars.invoice(ALICE, 50).payload), Told())

    with pytest.raises(NotAllowed):
        await stars.refund(Actor(ALICE, is_platform_admin=True), ALICE, "charge-1", Refunds())
    with pytest.raises(ValidationError, match="no payment"):
        await stars.refund(OWNER, BOB, "charge-1", Refunds())


async def test_the_report_counts_stars_credit_and_refunds(store: Store) -> None:
    """Per member and in total: payments, Stars, credit given, refunds."""
    stars = service(store)
    await stars.receive(ALICE, paid(stars.invoice(ALICE, 50).payload, "a1"), Told())
    await stars.receive(ALICE, paid(stars.invoice(ALICE, 100).payload, "a2", stars=100), Told())
    await stars.receive(BOB, paid(stars.invoice(BOB, 50).payload, "b1"), Told())
    await stars.refund(OWNER, BOB, "b1", Refunds())

    everyone = await stars.report()
    alice_only = await stars.report(ALICE)

    assert "• telegram:1001: 2 paid, 150 ⭐, $1.95 given" in everyone
    assert "• telegram:1002: 1 paid, 50 ⭐, $0.6500 given; 1 refunded (50 ⭐, $0.6500 taken back)" in everyone
    assert "• Total: 3 paid, 200 ⭐, $2.60 given; 1 refunded (50 ⭐, $0.6500 taken back)" in everyone
    assert "Total" not in alice_only
    assert "a1" in alice_only and "a2" in alice_only and "b1" not in alice_only


async def test_a_payment_that_does_not_match_a_signed_payload_is_still_credited(store: Store) -> None:
    """The member paid: without a valid payload the Stars are credited at today's rate, to the payer."""
    stars = service(store)

    got = await stars.receive(BOB, paid(stars.invoice(ALICE, 50).payload), Told())

    assert got.new
    assert GRANT + 50 * PER_STAR == await store.balance(BOB)
    assert False is got.payment.meta["verified"]
    await assert_ledger_exact(store, BOB)
