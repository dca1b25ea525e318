"""The values of the credit service: its policy, holds, reports and admin results.

Kept apart from ``bot.credits`` (which re-exports them) so renderers and adapters can use
them without the service. Amounts are integer micro-dollars.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, get_args

from bot.errors import ConfigError
from bot.ports import Account, Place, Reservation

AllowancePeriod = Literal["none", "daily", "weekly"]
PoolOrder = Literal["pool_first", "own_first"]


# ---------------------------------------------------------------- configuration and values


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    """The owner's configured defaults; amounts in micro-dollars."""

    starting_grant: int = 0
    allowance: int = 0
    allowance_period: AllowancePeriod = "none"
    allowance_cap: int = 0
    credits_per_dollar: int = 0  # 0 = show dollars; else show this many credits per dollar
    pool_order: PoolOrder = "pool_first"
    admin_ids: frozenset[str] = frozenset()  # "telegram:12345", "discord:999"
    # Anyone who makes a Discord server or Telegram group is its admin there, so by default
    # only the owner (admin_ids) may create money or change bot-wide settings.
    trust_community_admins: bool = False
    tz: tzinfo = UTC  # where days, weeks and months begin

    def __post_init__(self) -> None:
        for name in ("starting_grant", "allowance", "allowance_cap", "credits_per_dollar"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Credit setting {name} must not be negative.")
        if self.allowance_period not in get_args(AllowancePeriod):
            raise ConfigError(
                f"Allowance period must be none, daily or weekly, not {self.allowance_period!r}."
            )
        if self.pool_order not in get_args(PoolOrder):
            raise ConfigError(f"Pool order must be pool_first or own_first, not {self.pool_order!r}.")


@dataclass(frozen=True, slots=True)
class Allowance:
    """The allowance in force (configured, or as the owner changed it)."""

    amount: int
    period: AllowancePeriod
    cap: int

    @property
    def active(self) -> bool:
        return self.period != "none" and self.amount > 0 and self.cap > 0


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation the caller must settle or release."""

    reservation_id: str
    account: Account  # the user's own account, or the community pool
    amount: int
    purpose: str
    spender: Account | None = None  # the user, when the hold is on a pool

    @classmethod
    def of(cls, reservation: Reservation) -> Hold:
        return cls(
            reservation.id, reservation.account, reservation.amount, reservation.purpose, reservation.spender
        )


@dataclass(frozen=True, slots=True)
class RecoveryDecision:
    """What to do with a reservation a crash left open."""

    action: Literal["settle", "release", "keep"]  # keep = a job that will be resumed
    charged: int = 0
    reason: str = ""
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)


Resolver = Callable[[Reservation], Awaitable[RecoveryDecision | None]]  # None = the default rule


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    settled: int = 0
    released: int = 0
    kept: int = 0
    failed: int = 0
    charged: int = 0


@dataclass(frozen=True, slots=True)
class AllowanceStatus:
    amount: int
    period: AllowancePeriod
    cap: int
    next_refill: datetime


@dataclass(frozen=True, slots=True)
class PoolStatus:
    balance: int
    daily_cap: int | None  # None = no per-member cap
    spent_today: int  # by this member, settled
    held: int = 0  # by this member, reserved and not yet settled

    @property
    def room_today(self) -> int | None:
        """How much more this member may take from the pool today (None = no cap)."""
        if self.daily_cap is None:
            return None
        return max(0, self.daily_cap - self.spent_today - self.held)


@dataclass(frozen=True, slots=True)
class CreditStatus:
    balance: int
    spent_today: int
    spent_month: int
    allowance: AllowanceStatus | None
    pool: PoolStatus | None


@dataclass(frozen=True, slots=True)
class UsageLine:
    when: datetime | None
    purpose: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: int
    exact: bool
    from_pool: bool


@dataclass(frozen=True, slots=True)
class PriceLine:
    model: str
    kind: Literal["chat", "image"]
    input_per_million: int = 0
    output_per_million: int = 0
    per_image: int = 0


@dataclass(frozen=True, slots=True)
class AdminResult:
    account: Account
    changed: int  # signed; 0 if nothing changed (e.g. a repeated idempotency key)
    balance: int


@dataclass(frozen=True, slots=True)
class CommunitySpending:
    community: Place
    since: datetime
    pool_balance: int | None  # None = the community has no pool
    total: int
    by_member: tuple[tuple[Account, int], ...]  # biggest spenders first
    complete: bool = True  # False when only the newest SPENDING_SCAN_LIMIT charges were read
