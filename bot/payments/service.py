"""Members buy credit with Telegram Stars: offer, check, credit once, refund once.

The flow, for every platform adapter that can take Stars (only Telegram today):

    invoice(member, stars)          -> Invoice with a signed payload (pack, member, expiry)
    check(member, payload, ...)     -> None (ok) or the short reason shown to the member;
                                       answered well within Telegram's 10 seconds
    receive(member, paid, tell)     -> the credit added as one ledger entry keyed by the charge id,
                                       so a repeated delivery of the payment never credits twice;
                                       the member is told their new balance
    refund(actor, member, charge)   -> the credit taken back first (one ledger entry), then the
                                       Stars returned; refused when part of it was spent, unless forced

``is_allowed`` is the owner's say on who may pay (allow and block lists); it is asked at
pre-checkout only: a payment that went through is always credited.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.credits import CreditService
from bot.errors import BotError, NotAllowed, ValidationError
from bot.i18n import _
from bot.payments import texts
from bot.payments.payload import InvoicePayload, new_nonce, read_payload, sign_payload
from bot.payments.values import (
    CURRENCY,
    AlreadyRefunded,
    PaidStars,
    PurchaseTotals,
    RefundRefused,
    StarPayment,
    StarPaymentStore,
    StarRefunder,
    StarsOffer,
)
from bot.ports import Account, Actor

__all__ = ["INVOICE_TTL", "Allowed", "Invoice", "Purchase", "StarsService", "Tell", "allow_everyone"]

logger = logging.getLogger(__name__)

INVOICE_TTL = timedelta(hours=1)  # an invoice not paid within this is refused at pre-checkout

Allowed = Callable[[Account], Awaitable[bool]]
Tell = Callable[[str], Awaitable[None]]  # sends the member a message


async def allow_everyone(member: Account) -> bool:
    return True


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Invoice:
    """What the adapter sends as an invoice (``sendInvoice``, currency XTR)."""

    title: str  # 1-32 characters
    description: str  # 1-255 characters
    label: str
    stars: int
    payload: str
    currency: str = CURRENCY


@dataclass(frozen=True, slots=True)
class Purchase:
    """A payment as received: ``new`` when it was credited now, ``text`` for the member (None: already told)."""

    payment: StarPayment
    new: bool
    text: str | None


class StarsService:
    def __init__(
        self,
        store: StarPaymentStore,
        credits: CreditService,
        offer: StarsOffer,
        key: bytes,
        *,
        is_allowed: Allowed = allow_everyone,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._credits = credits
        self.offer = offer
        self._key = key
        self._is_allowed = is_allowed
        self._clock = clock
        # Charges being received in this process: a copy delivered meanwhile (the same update
        # twice in one batch) must not tell the member twice. Across processes, see ``confirmed``.
        self._receiving: set[str] = set()

    def __repr__(self) -> str:
        return f"StarsService(packs={self.offer.packs!r})"  # never the key

    @property
    def enabled(self) -> bool:
        return self.offer.enabled

    def fmt(self, micro: int) -> str:
        return self._credits.format_amount(micro)

    # ------------------------------------------------------------ offering

    def packs(self) -> list[tuple[int, str]]:
        """(Stars, button label) for every pack on offer."""
        return [
            (stars, texts.pack_label(stars, self.offer.credit(stars), self.fmt)) for stars in self.offer.packs
        ]

    async def menu(self, member: Account) -> str:
        """The text above the pack buttons."""
        if not self.enabled:
            return _(texts.CLOSED)
        balance = (await self._credits.status(member)).balance
        return texts.menu(balance, self.fmt)

    def invoice(self, member: Account, stars: int) -> Invoice:
        """An invoice for one of the packs, payable by ``member`` only, for ``INVOICE_TTL``."""
        if not self.enabled:
            raise ValidationError(_(texts.CLOSED))
        if stars not in self.offer.packs:
            raise ValidationError(_("That pack is no longer offered. Send /topup to see the packs."))
        credit = self.offer.credit(stars)
        payload = InvoicePayload(stars, credit, member, self._clock() + INVOICE_TTL, new_nonce())
        return Invoice(
            title=texts.invoice_title(credit, self.fmt),
            description=texts.invoice_description(stars, credit, self.fmt),
            label=texts.invoice_label(credit, self.fmt),
            stars=stars,
            payload=sign_payload(self._key, payload),
        )

    # ------------------------------------------------------------ pre-checkout

    async def check(self, member: Account, payload: str, currency: str, total: int) -> str | None:
        """None when the payment may go ahead; otherwise the short reason shown to the member."""
        found = read_payload(self._key, payload)
        if found is None:
            logger.warning("pre-checkout refused for %s: a payload the bot did not sign", member)
            return _(texts.REFUSED_UNKNOWN)
        if found.member != member:
            logger.warning(
                "pre-checkout refused: %s tried to pay an invoice made for %s", member, found.member
            )
            return _(texts.REFUSED_OTHER_MEMBER)
        if currency != CURRENCY or total != found.stars:
            logger.warning(
                "pre-checkout refused for %s: %d %s for an invoice of %d %s",
                member,
                total,
                currency,
                found.stars,
                CURRENCY,
            )
            return _(texts.REFUSED_AMOUNT)
        if found.expired(self._clock()):
            return _(texts.REFUSED_EXPIRED)
        if not self.enabled:
            return _(texts.CLOSED)
        if not await self._is_allowed(member):
            logger.info("pre-checkout refused for %s: not allowed to use the bot", member)
            return _(texts.REFUSED_NOT_ALLOWED)
        return None

    # ------------------------------------------------------------ payment received

    async def receive(self, member: Account, paid: PaidStars, tell: Tell) -> Purchase:
        """Credit a payment once, however often it is delivered, and ``tell`` the member who paid.

        The member is told until a confirmation is noted as sent (so a bot stopped between the
        credit and the message tells them on the next delivery), but only once at a time in this
        process. The money was taken, so a payment is credited even when its payload no longer
        checks (then at today's rate, and the log says so).
        """
        found = read_payload(self._key, paid.payload)
        verified = found is not None and found.member == member and found.stars == paid.total
        credit = found.credit if found is not None and verified else self.offer.credit(paid.total)
        if not verified:
            logger.warning(
                "payment %s of %d Stars by %s does not match a payload the bot signed; crediting %d",
                paid.charge_id,
                paid.total,
                member,
                credit,
            )
        first_here = paid.charge_id not in self._receiving
        self._receiving.add(paid.charge_id)
        try:
            purchase = await self._record(member, paid, credit, verified, tell=first_here)
            if purchase.text is not None:
                await tell(purchase.text)
                await self._store.mark_star_payment_confirmed(paid.charge_id)
            return purchase
        finally:
            if first_here:
                self._receiving.discard(paid.charge_id)

    async def _record(
        self, member: Account, paid: PaidStars, credit: int, verified: bool, *, tell: bool
    ) -> Purchase:
        await self._credits.status(member)  # opens a new member's account (with the starting grant) first
        payment, balance = await self._store.record_star_payment(
            StarPayment(
                charge_id=paid.charge_id,
                member=member,
                stars=paid.total,
                credit=credit,
                provider_charge_id=paid.provider_charge_id,
                meta={"verified": verified, "currency": paid.currency},
            )
        )
        new = balance is not None
        if new:
            logger.info("payment %s: %d Stars from %s, credit %d", paid.charge_id, paid.total, member, credit)
        else:
            logger.info("payment %s delivered again: already credited", paid.charge_id)
        if payment.confirmed or not tell:
            return Purchase(payment, new, None)
        now = balance if balance is not None else (await self._credits.status(member)).balance
        return Purchase(payment, new, texts.confirmation(payment, now, self.fmt))

    # ------------------------------------------------------------ refunds

    async def refund(
        self, actor: Actor, member: Account, charge_id: str, refunder: StarRefunder, *, force: bool = False
    ) -> str:
        """Take the credit back and return the Stars, once. Only the bot's owner may."""
        if not self._credits.is_owner(actor):
            raise NotAllowed("Only the bot's owner can refund payments.")
        payment = await self._store.get_star_payment(charge_id)
        if payment is None or payment.member != member:
            raise ValidationError(f"There is no payment {charge_id} by {member.platform}:{member.holder}.")
        start = await self._store.begin_star_refund(charge_id, force=force)
        if start.status == "refunded":
            return texts.already_refunded(payment, self.fmt)
        if start.status == "spent":
            raise ValidationError(texts.refund_spent(payment, start.balance, self.fmt))
        if start.status == "unknown":  # found just above: only a row deleted meanwhile gets here
            raise ValidationError(f"There is no payment {charge_id}.")
        try:
            await refunder.refund(member, charge_id)
        except AlreadyRefunded:
            logger.info("payment %s was already refunded at the platform", charge_id)
        except RefundRefused as exc:
            await self._store.undo_star_refund(charge_id)
            raise ValidationError(f"Telegram refused the refund: {exc}. The credit was given back.") from None
        except Exception as exc:
            logger.warning("refund of %s: outcome unknown", charge_id, exc_info=True)
            raise BotError(
                f"The refund of {charge_id} may not have reached Telegram ({type(exc).__name__}). "
                "Run the same refund again: the credit is never taken back twice."
            ) from None
        await self._store.finish_star_refund(charge_id)
        done = await self._store.get_star_payment(charge_id)
        balance = (await self._credits.status(member)).balance
        logger.info("payment %s refunded to %s", charge_id, member)
        return texts.refunded(done or payment, balance, self.fmt)

    # ------------------------------------------------------------ reports

    async def history(self, member: Account, *, limit: int = 5) -> list[StarPayment]:
        return await self._store.star_payments(member, limit=limit)

    def render_history(self, payments: list[StarPayment]) -> str:
        return texts.render_history(payments, self.fmt)

    async def report(self, member: Account | None = None) -> str:
        """Stars received, credit given and refunds, per member and in total (for the owner)."""
        totals: list[PurchaseTotals] = await self._store.star_payment_totals(member)
        recent = await self._store.star_payments(member, limit=10) if member is not None else []
        return texts.render_report(totals, recent, self.fmt, with_total=member is None)
