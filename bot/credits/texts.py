"""The short plain-text messages of the credit commands, the same on every platform.

Each function takes the values ``bot.credits`` returns and a ``fmt`` that turns
micro-dollars into dollars or credits; adapters show the result as it is (plain text, so
no platform's markup needs escaping).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bot.credits.values import (
    AdminResult,
    Allowance,
    CommunitySpending,
    CreditStatus,
    PoolStatus,
    PriceLine,
    UsageLine,
)

Fmt = Callable[[int], str]
PERIOD_WORD = {"daily": "daily", "weekly": "weekly", "none": ""}


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or 'UTC'}"


GRANT_WITHHELD = (
    "New accounts start with no credit today: the bot's starting grants for today were all given."
)


def insufficient(
    purpose: str,
    balance: int,
    needed: int,
    allowance: Allowance,
    next_refill: datetime | None,
    pool: PoolStatus | None,
    fmt: Fmt,
) -> str:
    """The one message a user gets when a request does not fit: balance, need, how to get more."""
    if purpose == "image":
        lines = [f"An image costs {fmt(needed)}, but your balance is {fmt(balance)}."]
    else:
        lines = [f"This needs up to {fmt(needed)}, but your balance is {fmt(balance)}."]
    if pool is not None:
        room = pool.room_today
        if room is not None and room < needed:
            lines.append(f"Your community pool limit for today ({fmt(pool.daily_cap or 0)}) is used up.")
        elif pool.balance < needed:
            lines.append(f"The community pool has only {fmt(pool.balance)} left.")
    more = "To get more, ask a server admin"
    if next_refill is not None:
        more += (
            f", or wait for your {PERIOD_WORD[allowance.period]} allowance of {fmt(allowance.amount)}"
            f" (next refill {when(next_refill)})"
        )
    lines.append(more + ".")
    if purpose == "chat":
        lines.append("A shorter conversation or a shorter answer needs less.")
    return "\n".join(lines)


def render_status(status: CreditStatus, fmt: Fmt) -> str:
    lines = [
        f"Balance: {fmt(status.balance)}",
        f"Spent today: {fmt(status.spent_today)} · this month: {fmt(status.spent_month)}",
    ]
    if status.allowance is not None:
        a = status.allowance
        lines.append(
            f"Allowance: {fmt(a.amount)} {PERIOD_WORD[a.period]}, up to {fmt(a.cap)}"
            f" (next refill {when(a.next_refill)})"
        )
    if status.pool is not None:
        p = status.pool
        pool_line = f"Community pool: {fmt(p.balance)}"
        if p.daily_cap is not None:
            pool_line += f"; you used {fmt(p.spent_today + p.held)} of your {fmt(p.daily_cap)} today"
        lines.append(pool_line)
    return "\n".join(lines)


def render_usage(lines: Sequence[UsageLine], fmt: Fmt) -> str:
    if not lines:
        return "No charges yet."
    out = ["Your latest charges:"]
    for line in lines:
        moment = when(line.when) if line.when else "?"
        if line.purpose == "chat":
            tokens = f"{line.prompt_tokens or 0} in / {line.completion_tokens or 0} out tokens"
            what = f"{line.model}, {tokens}" + ("" if line.exact else " (estimated)")
        else:
            what = f"{line.purpose} {line.model}".strip()
        source = " (community pool)" if line.from_pool else ""
        out.append(f"• {moment} · {what} · {fmt(line.cost)}{source}")
    return "\n".join(out)


def render_prices(lines: Sequence[PriceLine], fmt: Fmt) -> str:
    chat = [p for p in lines if p.kind == "chat"]
    image = [p for p in lines if p.kind == "image"]
    out = ["Chat, per 1M tokens (input / output):"]
    out += [f"• {p.model}: {fmt(p.input_per_million)} / {fmt(p.output_per_million)}" for p in chat]
    per_image = sorted({p.per_image for p in image})
    if len(per_image) == 1:
        out.append(f"Images: {fmt(per_image[0])} each, every model")
    elif image:
        out.append("Images, each:")
        out += [f"• {p.model}: {fmt(p.per_image)}" for p in image]
    return "\n".join(out)


def render_admin(result: AdminResult, action: str, fmt: Fmt) -> str:
    """``action`` names what was done: "granted", "taken", "added to the pool", "set"."""
    who = "The community pool" if result.account.is_pool else f"User {result.account.holder}"
    if result.changed == 0:
        return f"Nothing changed. {who} has {fmt(result.balance)}."
    if action.strip().lower() == "set":
        return f"{who} now has {fmt(result.balance)} (was {fmt(result.balance - result.changed)})."
    done = action.strip()
    return f"{done[:1].upper()}{done[1:]}: {fmt(abs(result.changed))}. {who} now has {fmt(result.balance)}."


def render_spending(report: CommunitySpending, fmt: Fmt) -> str:
    if report.pool_balance is None:
        return "This community has no pool. An owner can fund one."
    out = [
        f"Community pool: {fmt(report.pool_balance)} left",
        f"Spent since {when(report.since)}: {fmt(report.total)}",
    ]
    out += [f"• {account.holder}: {fmt(amount)}" for account, amount in report.by_member[:10]]
    if not report.complete:
        out.append("(member totals count the most recent charges only)")
    return "\n".join(out)
