"""Numbers and relative dates in the current language's conventions (Babel's CLDR data).

Amounts stay in US dollars or credits: only separators and grouping follow the language.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from babel.dates import TIMEDELTA_UNITS, format_datetime, format_skeleton, format_timedelta
from babel.numbers import format_decimal, get_decimal_symbol, get_group_symbol

from bot.i18n.catalog import current


def integer(value: int) -> str:
    """``12345`` -> ``12,345`` (en), ``12.345`` (tr), ``12 345`` (nb)."""
    return format_decimal(value, locale=current())


def decimal(text: str) -> str:
    """An English-formatted number (``"1,234.5"``, from fixed rounding) with the language's symbols."""
    language = current()
    group, point = get_group_symbol(language), get_decimal_symbol(language)
    return text.replace(",", "\0").replace(".", point).replace("\0", group)


def number(value: float | Decimal, digits: int = 2) -> str:
    return format_decimal(value, format=f"#,##0.{'#' * digits}" if digits else "#,##0", locale=current())


def relative(delta: timedelta) -> str:
    """``timedelta(hours=3)`` -> ``in 3 hours`` / ``3 saat sonra`` / ``om 3 timer``; negative is past."""
    return format_timedelta(delta, add_direction=True, locale=current())


THRESHOLD = 0.85  # Babel's: 51 minutes is "in 1 hour"
_UNITS = [(unit, size) for unit, size in TIMEDELTA_UNITS if unit != "week"]  # "in 9 days", not "in 1 week"
_ROUNDED_UP = frozenset({"second", "minute", "hour", "day"})


def until(at: datetime, now: datetime) -> str:
    """How long from ``now`` until ``at``: ``in 3 hours`` / ``3 saat sonra`` / ``om 3 timer``.

    Rounded up in seconds, minutes, hours and days, so a member told when to come back never comes
    too early (a refill 2 h 10 min away is ``in 3 hours``); months and years round to the nearest
    (the date itself is shown next to them). Never in the past: a moment gone is ``in 1 second``.
    """
    return later(at - now)


def later(delta: timedelta) -> str:
    """:func:`until` for a length of time: ``timedelta(seconds=80)`` -> ``in 2 minutes``."""
    seconds = max(1, math.ceil(delta.total_seconds()))
    for unit, size in _UNITS:
        value = seconds / size
        if value >= THRESHOLD or unit == "second":
            whole = math.ceil(value) if unit in _ROUNDED_UP else max(1, round(value))
            # threshold=whole: Babel keeps this unit (every larger one counts less than ``whole``)
            return format_timedelta(
                timedelta(seconds=whole * size), threshold=whole, add_direction=True, locale=current()
            )
    raise AssertionError("unreachable: seconds always match")


def ordinal(n: int) -> str:
    """A place in line: ``3rd`` in English, ``3.`` in Turkish, ``3`` in Norwegian ("nummer 3")."""
    language = current()
    if language == "tr":
        return f"{n}."
    if language != "en":
        return str(n)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def moment(value: datetime) -> str:
    """A point in time in UTC: ``2026-11-23 00:00 UTC`` in English (unambiguous, as before), the
    language's own date in the others (``23 Kas 2026 00:00 UTC``, ``23. nov. 2026 00:00 UTC``)."""
    language = current()
    value = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if language == "en":
        return f"{value:%Y-%m-%d %H:%M} UTC"
    day = format_skeleton("yMMMd", value, tzinfo=UTC, locale=language)
    return f"{day} {format_datetime(value, 'HH:mm', tzinfo=UTC, locale=language)} UTC"
