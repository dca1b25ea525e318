"""The values of Stars payments and the store protocol they are kept behind.

Amounts of credit are integer micro-dollars; Stars are whole Stars (currency ``XTR``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from bot.errors import ConfigError
from bot.ports import Account

CURRENCY = "XTR"  # Telegram Stars
MAX_PACK_STARS = 10_000  # the most Stars one invoice may ask for

RefundState = Literal["none", "pending", "refunded"]


@dataclass(frozen=True, slots=True)
class StarsOffer:
    """The owner's offer: the packs (Stars) members can buy and the credit one Star buys."""

    packs: tuple[int, ...] = ()  # empty = members cannot buy credit
    credit_per_star: int = 0  # micro-dollars

    def __post_init__(self) -> None:
        if any(not 1 <= stars <= MAX_PACK_STARS for stars in self.packs):
            raise ConfigError(f"STARS_PACKS: each pack must be 1 to {MAX_PACK_STARS:,} Stars.")
        if self.packs and self.credit_per_star <= 0:
            raise ConfigError("STARS_USD_PER_STAR must be more than zero when STARS_PACKS is set.")

    @property
    def enabled(self) -> bool:
        return bool(self.packs)

    def credit(self, stars: int) -> int:
        return stars * self.credit_per_star


@dataclass(frozen=True, slots=True)
class PaidStars:
    """A ``successful_payment`` as the platform delivered it."""

    charge_id: str  # telegram_payment_charge_id
    currency: str
    total: int  # Stars
    payload: str
    provider_charge_id: str = ""


@dataclass(frozen=True, slots=True)
class StarPayment:
    """One payment received, and what became of it."""

    charge_id: str
    member: Account
    stars: int
    credit: int  # micro-dollars added to the member's balance
    provider_charge_id: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    paid_at: datetime | None = None
    confirmed: bool = False  # the member was told
    refund_state: RefundState = "none"
    refund_taken: int = 0  # micro-dollars taken back by the refund
    refund_attempts: int = 0
    refunded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundStart:
    """What ``begin_star_refund`` did.

    ``started``: the credit was taken back now (``taken``) and the refund is pending; ``pending``: an
    earlier attempt took it and its outcome at Telegram is unknown; ``refunded``: done before;
    ``spent``: refused, the balance no longer holds the credit; ``unknown``: no such charge.
    """

    status: Literal["started", "pending", "refunded", "spent", "unknown"]
    payment: StarPayment | None = None
    taken: int = 0
    balance: int = 0


@dataclass(frozen=True, slots=True)
class PurchaseTotals:
    """One member's purchases (or everyone's, with ``member`` None)."""

    member: Account | None
    payments: int
    stars: int
    credit: int
    refunds: int
    refunded_stars: int
    taken_back: int


@runtime_checkable
class StarPaymentStore(Protocol):
    """Where payments are kept; every change of a balance is a ledger entry in the same transaction."""

    async def record_star_payment(self, payment: StarPayment) -> tuple[StarPayment, int | None]:
        """Store a payment and credit its member once per charge id, in one transaction.

        Returns the stored payment and the balance after the credit; the balance is None when the
        charge id was already recorded (a repeated delivery: nothing changes).
        """

    async def get_star_payment(self, charge_id: str) -> StarPayment | None: ...

    async def mark_star_payment_confirmed(self, charge_id: str) -> None:
        """Note that the member was told about this payment."""

    async def star_payments(self, member: Account | None = None, *, limit: int = 20) -> list[StarPayment]:
        """Newest first; everyone's when ``member`` is None."""

    async def star_payment_totals(self, member: Account | None = None) -> list[PurchaseTotals]:
        """Per member (biggest buyers first); only ``member``'s when given."""

    async def begin_star_refund(self, charge_id: str, *, force: bool) -> RefundStart:
        """Take the payment's credit back (one ledger entry) and mark the refund pending.

        Refused (``spent``) when the balance no longer holds the whole credit, unless ``force``,
        which takes what is left of it (never below zero).
        """

    async def finish_star_refund(self, charge_id: str) -> bool:
        """Mark a pending refund done; False if it was not pending."""

    async def undo_star_refund(self, charge_id: str) -> None:
        """Give back what a pending refund took (one ledger entry) when the platform refused it."""


class StarRefunder(Protocol):
    """The platform's side of a refund (Telegram's ``refundStarPayment``)."""

    async def refund(self, member: Account, charge_id: str) -> None:
        """Return the Stars. Raises ``AlreadyRefunded`` if the platform did so before, or
        ``RefundRefused`` (with the platform's reason) if it will not; anything else means the
        outcome is unknown."""


class AlreadyRefunded(Exception):
    """The platform had already returned these Stars."""


class RefundRefused(Exception):
    """The platform refused the refund; the message says why."""
