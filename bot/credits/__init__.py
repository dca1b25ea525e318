"""Credits: every member's balance in integer micro-dollars, reserved before and settled after each request.

Owns the credit service (reserve -> settle / release, allowances, pools, admin operations), its
values, the texts of the credit commands, money formatting, calendar periods, and the bot-wide
limits (spending per day / month, grants per day) with the owner alerts (``bot.credits.limits``).
Uses no other capability.
"""

from bot.credits.money import format_amount, parse_amount
from bot.credits.service import (
    AdminResult,
    Allowance,
    AllowancePeriod,
    AllowanceStatus,
    CommunitySpending,
    CreditPolicy,
    CreditService,
    CreditStatus,
    CreditStore,
    Hold,
    PoolOrder,
    PoolStatus,
    PriceLine,
    RecoveryDecision,
    RecoveryReport,
    Resolver,
    UsageLine,
)

__all__ = [
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
    "format_amount",
    "parse_amount",
]
