"""Calendar periods for credits: the day, ISO week and month a moment falls in.

Boundaries are midnights in one configured time zone (UTC by default) and are returned
as timezone-aware UTC datetimes, the form the stores compare.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

Period = Literal["daily", "weekly"]


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _local_date(now: datetime, tz: tzinfo) -> date:
    if now.tzinfo is None:
        raise ValueError("Credit periods need a timezone-aware datetime.")
    return now.astimezone(tz).date()


def day_bounds(now: datetime, tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """[start, end) of the day ``now`` falls in."""
    today = _local_date(now, tz)
    return _midnight(today, tz), _midnight(today + timedelta(days=1), tz)


def week_bounds(now: datetime, tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """[start, end) of the ISO week (Monday to Sunday) ``now`` falls in."""
    today = _local_date(now, tz)
    monday = today - timedelta(days=today.weekday())
    return _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz)


def month_bounds(now: datetime, tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """[start, end) of the calendar month ``now`` falls in."""
    today = _local_date(now, tz)
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first, tz), _midnight(following, tz)


def period_id(period: Period, now: datetime, tz: tzinfo = UTC) -> str:
    """A name for the period ``now`` falls in: ``"2026-11-22"`` or ``"2026-W47"``."""
    today = _local_date(now, tz)
    if period == "daily":
        return today.isoformat()
    year, week, _ = today.isocalendar()
    return f"{year}-W{week:02d}"


def next_start(period: Period, now: datetime, tz: tzinfo = UTC) -> datetime:
    """When the next period begins (the next allowance refill)."""
    bounds = day_bounds(now, tz) if period == "daily" else week_bounds(now, tz)
    return bounds[1]
