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
from bot.i18n import N_, _, moment, until

Fmt = Callable[[int], str]


def when(at: datetime) -> str:
    """A date and time in the current language (UTC)."""
    return moment(at)


def soon(at: datetime, now: datetime) -> dict[str, str]:
    """The placeholders of a moment to come: ``relative`` (``in 3 hours``) and ``when`` (the date)."""
    return {"relative": until(at, now), "when": when(at)}


GRANT_WITHHELD = N_(
    "New accounts start with no credit today: the bot's starting grants for today were all given."
)


def _allowance(allowance: Allowance, fmt: Fmt) -> str:
    if allowance.period == "weekly":
        return _("your weekly allowance of {amount}", amount=fmt(allowance.amount))
    return _("your daily allowance of {amount}", amount=fmt(allowance.amount))


def insufficient(
    purpose: str,
    balance: int,
    needed: int,
    allowance: Allowance,
    next_refill: datetime | None,
    pool: PoolStatus | None,
    fmt: Fmt,
    now: datetime,
    pool_day_ends: datetime | None = None,
) -> str:
    """The one message a user gets when a request does not fit: balance, need, how to get more."""
    if purpose == "image":
        lines = [
            _("An image costs {cost}, but your balance is {balance}.", cost=fmt(needed), balance=fmt(balance))
        ]
    else:
        lines = [
            _(
                "This needs up to {cost}, but your balance is {balance}.",
                cost=fmt(needed),
                balance=fmt(balance),
            )
        ]
    if pool is not None:
        room = pool.room_today
        if room is not None and room < needed and pool_day_ends is not None:
            lines.append(
                _(
                    "Your community pool limit for today ({cap}) is used up; it starts again {relative}.",
                    cap=fmt(pool.daily_cap or 0),
                    relative=until(pool_day_ends, now),
                )
            )
        elif room is not None and room < needed:
            lines.append(
                _("Your community pool limit for today ({cap}) is used up.", cap=fmt(pool.daily_cap or 0))
            )
        elif pool.balance < needed:
            lines.append(_("The community pool has only {amount} left.", amount=fmt(pool.balance)))
    if next_refill is not None:
        lines.append(
            _(
                "To get more, ask a server admin, or wait for {allowance} (next refill {relative}, {when}).",
                allowance=_allowance(allowance, fmt),
                **soon(next_refill, now),
            )
        )
    else:
        lines.append(_("To get more, ask a server admin."))
    if purpose == "chat":
        lines.append(_("A shorter conversation or a shorter answer needs less."))
    return "\n".join(lines)


def render_status(status: CreditStatus, fmt: Fmt, now: datetime) -> str:
    lines = [
        _("Balance: {amount}", amount=fmt(status.balance)),
        _(
            "Spent today: {today} · this month: {month}",
            today=fmt(status.spent_today),
            month=fmt(status.spent_month),
        ),
    ]
    if status.allowance is not None:
        a = status.allowance
        values = {"amount": fmt(a.amount), "cap": fmt(a.cap), **soon(a.next_refill, now)}
        if a.period == "weekly":
            lines.append(
                _("Allowance: {amount} weekly, up to {cap} (next refill {relative}, {when})", **values)
            )
        else:
            lines.append(
                _("Allowance: {amount} daily, up to {cap} (next refill {relative}, {when})", **values)
            )
    if status.pool is not None:
        p = status.pool
        if p.daily_cap is not None:
            lines.append(
                _(
                    "Community pool: {amount}; you used {used} of your {cap} today",
                    amount=fmt(p.balance),
                    used=fmt(p.spent_today + p.held),
                    cap=fmt(p.daily_cap),
                )
            )
        else:
            lines.append(_("Community pool: {amount}", amount=fmt(p.balance)))
    return "\n".join(lines)


def render_usage(lines: Sequence[UsageLine], fmt: Fmt) -> str:
    if not lines:
        return _("No charges yet.")
    out = [_("Your latest charges:")]
    for line in lines:
        moment = when(line.when) if line.when else "?"
        if line.purpose == "chat":
            values = {
                "model": line.model,
                "input": str(line.prompt_tokens or 0),
                "output": str(line.completion_tokens or 0),
            }
            if line.exact:
                what = _("{model}, {input} in / {output} out tokens", **values)
            else:
                what = _("{model}, {input} in / {output} out tokens (estimated)", **values)
        elif line.purpose == "image":
            what = _("image {model}", model=line.model).strip()
        else:
            what = f"{line.purpose} {line.model}".strip()
        source = _(" (community pool)") if line.from_pool else ""
        out.append(f"• {moment} · {what} · {fmt(line.cost)}{source}")
    return "\n".join(out)


def render_prices(lines: Sequence[PriceLine], fmt: Fmt) -> str:
    chat = [p for p in lines if p.kind == "chat"]
    image = [p for p in lines if p.kind == "image"]
    out = [_("Chat, per 1M tokens (input / output):")]
    out += [f"• {p.model}: {fmt(p.input_per_million)} / {fmt(p.output_per_million)}" for p in chat]
    per_image = sorted({p.per_image for p in image})
    if len(per_image) == 1:
        out.append(_("Images: {amount} each, every model", amount=fmt(per_image[0])))
    elif image:
        out.append(_("Images, each:"))
        out += [f"• {p.model}: {fmt(p.per_image)}" for p in image]
    return "\n".join(out)


ADMIN_DONE = {
    "granted": N_("Granted: {amount}. {who} now has {balance}."),
    "taken": N_("Taken: {amount}. {who} now has {balance}."),
    "added to the pool": N_("Added to the pool: {amount}. {who} now has {balance}."),
}


def render_admin(result: AdminResult, action: str, fmt: Fmt) -> str:
    """``action`` names what was done: "granted", "taken", "added to the pool", "set"."""
    who = _("The community pool") if result.account.is_pool else _("User {id}", id=result.account.holder)
    if result.changed == 0:
        return _("Nothing changed. {who} has {balance}.", who=who, balance=fmt(result.balance))
    action = action.strip().lower()
    if action == "set":
        return _(
            "{who} now has {balance} (was {before}).",
            who=who,
            balance=fmt(result.balance),
            before=fmt(result.balance - result.changed),
        )
    return _(
        ADMIN_DONE.get(action, ADMIN_DONE["granted"]),
        amount=fmt(abs(result.changed)),
        who=who,
        balance=fmt(result.balance),
    )


def render_spending(report: CommunitySpending, fmt: Fmt) -> str:
    if report.pool_balance is None:
        return _("This community has no pool. An owner can fund one.")
    out = [
        _("Community pool: {amount} left", amount=fmt(report.pool_balance)),
        _("Spent since {when}: {amount}", when=when(report.since), amount=fmt(report.total)),
    ]
    out += [f"• {account.holder}: {fmt(amount)}" for account, amount in report.by_member[:10]]
    if not report.complete:
        out.append(_("(member totals count the most recent charges only)"))
    return "\n".join(out)
