"""Showing and reading amounts: integer micro-dollars in, short text out, and back.

Amounts are integer micro-dollars everywhere in the bot (1 USD = 1_000_000). Users see
them either as dollars (``"$0.0123"``) or, when the owner sets how many credits a dollar
is, as credits (``"12.3 credits"``). Rounding happens here, for display only; parsing is
exact (``Decimal`` -> ``Fraction``), so ``"$0.50"`` is exactly 500_000.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from bot.errors import ValidationError
from bot.i18n import _, decimal, n_

MICRO = 1_000_000
# A bound far above any real balance that keeps every amount inside a signed 64-bit column.
MAX_AMOUNT = 10**15  # one billion dollars

_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_AMOUNT = re.compile(
    rf"^\s*(?P<dollar>\$)?\s*(?P<number>{_NUMBER})\s*(?P<unit>credits?|dollars?|usd|\$)?\s*$",
    re.IGNORECASE,
)


def format_amount(micro: int, credits_per_dollar: int = 0) -> str:
    """``1500 -> "$0.0015"``; with 1000 credits a dollar, ``1500 -> "1.5 credits"``."""
    if micro < 0:
        return "-" + format_amount(-micro, credits_per_dollar)
    if credits_per_dollar > 0:
        return _format_credits(Fraction(micro * credits_per_dollar, MICRO))
    return "$" + decimal(_format_dollars(Fraction(micro, MICRO)))


def _format_dollars(dollars: Fraction) -> str:
    if dollars == 0:
        return "0.00"
    if dollars >= 1:
        return _fixed(dollars, 2)
    if dollars >= Fraction(1, 100):
        return _fixed(dollars, 4)
    # Below a cent (a few hundred tokens) show every micro-dollar: "$0.00075", not "$0.0008".
    exact = _fixed(dollars, 6).rstrip("0")
    return exact.ljust(len("0.0000"), "0")


def _format_credits(credits: Fraction) -> str:
    if credits >= 100:
        text = f"{int(_round(credits, 0)):,}"
    elif credits >= 1:
        text = _fixed(credits, 1).removesuffix(".0")
    elif credits == 0:
        text = "0"
    else:
        text = _fixed(credits, 3).rstrip("0").rstrip(".")
        if Decimal(text) == 0:
            text = _fixed(credits, 6).rstrip("0").rstrip(".")
    return n_("{amount} credit", "{amount} credits", 1 if text == "1" else 2, amount=decimal(text))


def _round(value: Fraction, places: int) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _fixed(value: Fraction, places: int) -> str:
    return f"{_round(value, places):.{places}f}"


def parse_amount(text: str, credits_per_dollar: int = 0) -> int:
    """Read ``"5"``, ``"$5"``, ``"0.50"``, ``"5 dollars"`` or ``"500 credits"`` as micro-dollars.

    A bare number is in the unit users see (credits when the owner set a rate, else
    dollars). Dollars must be exact to the micro-dollar; credits round to the nearest one.
    Raises ``ValidationError`` with a sentence the user can act on.
    """
    if text.strip().startswith("-"):
        raise ValidationError(_("Amounts must not be negative."))
    match = _AMOUNT.match(text)
    if match is None:
        raise ValidationError(
            _("“{text}” is not an amount. Write it like 5, $0.50 or 500 credits.", text=text.strip())
        )
    unit = (match["unit"] or "").lower()
    number = Fraction(Decimal(match["number"].replace(",", "")))
    in_credits = unit.startswith("credit") or (not unit and not match["dollar"] and credits_per_dollar > 0)
    if match["dollar"] and unit.startswith("credit"):
        raise ValidationError(
            _("“{text}” mixes dollars and credits. Write $5 or 500 credits.", text=text.strip())
        )
    if in_credits:
        micro = _credits_to_micro(number, credits_per_dollar)
    else:
        micro_exact = number * MICRO
        if micro_exact.denominator != 1:
            raise ValidationError(_("Amounts in dollars can have at most six decimals."))
        micro = micro_exact.numerator
    if micro > MAX_AMOUNT:
        raise ValidationError(_("That amount is too large."))
    return micro


def _credits_to_micro(credits: Fraction, credits_per_dollar: int) -> int:
    if credits_per_dollar <= 0:
        raise ValidationError(_("This bot counts in dollars, not credits. Write an amount like $0.50."))
    micro = credits * MICRO / credits_per_dollar
    return int(_round(micro, 0))
