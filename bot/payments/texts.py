"""The short plain-text messages of Stars payments, the same on every platform that takes them.

What members read is in the catalog; the refund and report texts are the owner's (the terminal and
``/refund``) and stay English.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.credits.texts import when
from bot.i18n import N_, _
from bot.payments.values import PurchaseTotals, StarPayment

Fmt = Callable[[int], str]
STAR = "⭐"

CLOSED = N_("Buying credit is not offered here.")
REFUSED_UNKNOWN = N_("This invoice was not made by this bot. Send /topup for a new one.")
REFUSED_OTHER_MEMBER = N_("This invoice was made for someone else. Send /topup to get your own.")
REFUSED_AMOUNT = N_("The amount does not match this invoice. Send /topup for a new one.")
REFUSED_EXPIRED = N_("This invoice has expired. Send /topup for a new one.")
REFUSED_NOT_ALLOWED = N_("You cannot buy credit here.")
REFUSED_BUSY = N_("I could not check this payment in time. Please try again.")
GROUP_HINT = N_(
    "Credit is bought in our private chat, so your payment stays private. Open it and send /topup there."
)


def pack_label(stars: int, credit: int, fmt: Fmt) -> str:
    return f"{stars} {STAR} → {fmt(credit)}"


def menu(balance: int, fmt: Fmt) -> str:
    return _("Buy credit with Telegram Stars. Your balance: {balance}.\nChoose a pack:", balance=fmt(balance))


def invoice_title(credit: int, fmt: Fmt) -> str:
    return _("Credit: {amount}", amount=fmt(credit))[:32]


def invoice_description(stars: int, credit: int, fmt: Fmt) -> str:
    return _(
        "{stars} Telegram Stars for {amount} to spend on chat and pictures with this bot.",
        stars=stars,
        amount=fmt(credit),
    )[:255]


def invoice_label(credit: int, fmt: Fmt) -> str:
    return _("Credit: {amount}", amount=fmt(credit))


def confirmation(payment: StarPayment, balance: int, fmt: Fmt) -> str:
    return _(
        "Thank you! {amount} added for {stars} {star}. Your balance: {balance}.\nPayment id: {charge}",
        amount=fmt(payment.credit),
        stars=payment.stars,
        star=STAR,
        balance=fmt(balance),
        charge=payment.charge_id,
    )


def refunded(payment: StarPayment, balance: int, fmt: Fmt) -> str:
    who = f"{payment.member.platform}:{payment.member.holder}"
    return (
        f"Refunded {payment.stars} {STAR} to {who} and took back {fmt(payment.refund_taken)}. "
        f"Their balance: {fmt(balance)}."
    )


def already_refunded(payment: StarPayment, fmt: Fmt) -> str:
    return (
        f"Payment {payment.charge_id} was already refunded ({payment.stars} {STAR}, "
        f"{fmt(payment.refund_taken)} taken back). Nothing changed."
    )


def refund_spent(payment: StarPayment, balance: int, fmt: Fmt) -> str:
    return (
        f"Not refunded: this payment gave {fmt(payment.credit)}, but the balance is only {fmt(balance)} "
        "(part of it was spent, or is reserved by a request in progress). "
        "Force it (--force, or /refund ... force) to return the Stars anyway and take back what is left."
    )


def render_history(payments: Sequence[StarPayment], fmt: Fmt) -> str:
    if not payments:
        return ""
    out = [_("Your Telegram Stars purchases:")]
    for p in payments:
        moment = when(p.paid_at) if p.paid_at else "?"
        refund = _(" (refunded)") if p.refund_state == "refunded" else ""
        out.append(f"• {moment} · {p.stars} {STAR} → {fmt(p.credit)}{refund}")
    return "\n".join(out)


def render_report(
    totals: Sequence[PurchaseTotals], recent: Sequence[StarPayment], fmt: Fmt, *, with_total: bool
) -> str:
    if not totals:
        return "No Telegram Stars payments yet."
    out = ["Telegram Stars payments (member: payments, Stars received, credit given; refunds):"]
    out += [_totals_line(t, fmt) for t in totals]
    if with_total:
        everyone = PurchaseTotals(
            None,
            sum(t.payments for t in totals),
            sum(t.stars for t in totals),
            sum(t.credit for t in totals),
            sum(t.refunds for t in totals),
            sum(t.refunded_stars for t in totals),
            sum(t.taken_back for t in totals),
        )
        out.append(_totals_line(everyone, fmt))
    if recent:
        out.append("Payments:")
        for p in recent:
            refund = f", refunded ({fmt(p.refund_taken)} taken back)" if p.refund_state == "refunded" else ""
            if p.refund_state == "pending":
                refund = ", refund pending: run the refund again"
            moment = when(p.paid_at) if p.paid_at else "?"
            out.append(f"• {moment} · {p.charge_id} · {p.stars} {STAR} → {fmt(p.credit)}{refund}")
    return "\n".join(out)


def _totals_line(t: PurchaseTotals, fmt: Fmt) -> str:
    who = "Total" if t.member is None else f"{t.member.platform}:{t.member.holder}"
    line = f"• {who}: {t.payments} paid, {t.stars} {STAR}, {fmt(t.credit)} given"
    if t.refunds:
        line += f"; {t.refunds} refunded ({t.refunded_stars} {STAR}, {fmt(t.taken_back)} taken back)"
    return line
