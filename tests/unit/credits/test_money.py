"""Showing and reading amounts (bot.credits.money) and the calendar periods credits use (bot.credits.periods)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.credits import periods
from bot.credits.money import format_amount, parse_amount
from bot.errors import ValidationError


@pytest.mark.parametrize(
    ("micro", "shown"),
    [
        (0, "$0.00"),
        (5_000_000, "$5.00"),
        (12_345_678, "$12.35"),
        (12_345, "$0.0123"),
        (1_500, "$0.0015"),
        (750, "$0.00075"),
        (6, "$0.000006"),
        (-500_000, "-$0.5000"),
    ],
)
def test_dollars_are_rounded_for_display(micro: int, shown: str) -> None:
    """Dollars show 2 decimals from $1, 4 from a cent, every micro-dollar below a cent."""
    assert shown == format_amount(micro)


@pytest.mark.parametrize(
    ("micro", "shown"),
    [
        (0, "0 credits"),
        (1_000, "1 credit"),
        (12_345, "12.3 credits"),
        (1_234_567, "1,235 credits"),
        (15, "0.015 credits"),
        (1, "0.001 credits"),
    ],
)
def test_credits_are_rounded_for_display(micro: int, shown: str) -> None:
    """With 1000 credits a dollar, amounts show as credits."""
    assert shown == format_amount(micro, credits_per_dollar=1_000)


@pytest.mark.parametrize(
    ("text", "credits_per_dollar", "micro"),
    [
        ("5", 0, 5_000_000),
        ("$5", 0, 5_000_000),
        ("0.50", 0, 500_000),
        (" $ 0.000001 ", 0, 1),
        ("5 dollars", 100, 5_000_000),
        ("2 USD", 0, 2_000_000),
        ("500 credits", 1_000, 500_000),
        ("1,000 credits", 1_000, 1_000_000),
        ("5", 1_000, 5_000),
        ("1 credit", 3, 333_333),
        ("0", 0, 0),
    ],
)
def test_amounts_parse_exactly(text: str, credits_per_dollar: int, micro: int) -> None:
    """Dollars parse exactly; a bare number is in the displayed unit; credits round to a micro-dollar."""
    assert micro == parse_amount(text, credits_per_dollar)


@pytest.mark.parametrize(
    "text",
    ["", "five", "-5", "$-5", "1e3", "nan", "inf", "0.0000001", "$5 credits", "1,00", "5 credits", "10" * 20],
)
def test_bad_amounts_are_refused_with_a_validation_error(text: str) -> None:
    """Garbage, negatives, exponents, sub-micro dollars, mixed units and huge numbers are refused."""
    with pytest.raises(ValidationError):
        parse_amount(text)


def test_parse_and_format_agree() -> None:
    """Below a cent, a formatted dollar amount parses back to exactly the same micro-dollars."""
    for micro in (1, 750, 1_500, 9_999):
        assert micro == parse_amount(format_amount(micro))


def test_day_week_and_month_bounds() -> None:
    """Periods are [start, end) in UTC; weeks start on Monday; ids name the day or ISO week."""
    sunday = datetime(2026, 11, 22, 23, 59, tzinfo=UTC)
    assert (datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)) == periods.day_bounds(
        sunday
    )
    assert (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)) == periods.week_bounds(
        sunday
    )
    assert (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)) == periods.month_bounds(
        sunday
    )
    assert ("2026-11-22", "2026-W47") == (
        periods.period_id("daily", sunday),
        periods.period_id("weekly", sunday),
    )
    assert "2026-W48" == periods.period_id("weekly", sunday + timedelta(minutes=1))
    assert datetime(2027, 1, 1, tzinfo=UTC) == periods.month_bounds(datetime(2026, 12, 31, tzinfo=UTC))[1]


def test_periods_follow_the_configured_time_zone() -> None:
    """With a UTC+2 zone the day starts at 22:00 UTC."""
    plus_two = timezone(timedelta(hours=2))
    late = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # 00:30 on the 23rd in UTC+2
    assert datetime(2026, 11, 22, 22, 0, tzinfo=UTC) == periods.day_bounds(late, plus_two)[0]
    assert "2026-11-23" == periods.period_id("daily", late, plus_two)


def test_periods_refuse_naive_datetimes() -> None:
    """A naive datetime is a bug, not a UTC time."""
    with pytest.raises(ValueError, match="timezone-aware"):
        periods.day_bounds(datetime(2026, 11, 22))
