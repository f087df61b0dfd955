"""Calendar arithmetic for time ranges: days, weeks (Monday first), months, years, parts of
a day, relative to the time a query is asked at (``at``, in its timezone). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    text: str
    """The words that produced it (shown in a result's explanation)."""

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


def day_start(d: date, at: datetime) -> datetime:
    return datetime.combine(d, time(), tzinfo=at.tzinfo)


def days_from(start: date, days: int, at: datetime, text: str) -> TimeRange:
    return TimeRange(day_start(start, at), day_start(start + timedelta(days=days), at), text)


def week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def month_range(year: int, month: int, at: datetime, text: str) -> TimeRange:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return TimeRange(day_start(date(year, month, 1), at), day_start(nxt, at), text)


def year_range(year: int, at: datetime, text: str) -> TimeRange:
    return TimeRange(day_start(date(year, 1, 1), at), day_start(date(year + 1, 1, 1), at), text)


def past_month(month: int, at: datetime, text: str) -> TimeRange:
    """A bare month name means its latest occurrence not after ``at``'s month."""
    year = at.year if month <= at.month else at.year - 1
    return month_range(year, month, at, text)


def weekday_range(target: int, at: datetime, which: str, text: str) -> TimeRange:
    """``which``: "last"/"" = the latest such day before today; "this" = in this week;
    "next" = the first such day after today."""
    today = at.date()
    if which == "this":
        d = week_start(today) + timedelta(days=target)
    elif which == "next":
        d = today + timedelta(days=(target - today.weekday() - 1) % 7 + 1)
    else:
        d = today - timedelta(days=(today.weekday() - target - 1) % 7 + 1)
    return days_from(d, 1, at, text)


def weekend_range(offset_weeks: int, at: datetime, text: str) -> TimeRange:
    saturday = week_start(at.date()) + timedelta(days=5 + 7 * offset_weeks)
    return days_from(saturday, 2, at, text)


def ago_range(n: int, unit: str, at: datetime, text: str) -> TimeRange:
    today = at.date()
    if unit == "day":
        return days_from(today - timedelta(days=n), 1, at, text)
    if unit == "week":
        return days_from(week_start(today) - timedelta(weeks=n), 7, at, text)
    if unit == "month":
        return month_range(at.year, at.month - n, at, text)
    return year_range(at.year - n, at, text)


def part_of_day(
    at: datetime, start_hour: int, end_hour: int, offset_days: int, text: str
) -> TimeRange:
    d = at.date() + timedelta(days=offset_days)
    return TimeRange(
        datetime.combine(d, time(start_hour), tzinfo=at.tzinfo),
        datetime.combine(d, time(), tzinfo=at.tzinfo) + timedelta(hours=end_hour),
        text,
    )


def shifted_range(unit: str, shift: int, at: datetime, text: str) -> TimeRange:
    if unit == "week":
        return days_from(week_start(at.date()) + timedelta(weeks=shift), 7, at, text)
    if unit == "month":
        return month_range(at.year, at.month + shift, at, text)
    return year_range(at.year + shift, at, text)


def day_or_none(year: int, month: int, day: int, at: datetime, text: str) -> TimeRange | None:
    try:
        return days_from(date(year, month, day), 1, at, text)
    except ValueError:
        return None


def past_day(month: int, day: int, at: datetime, text: str) -> TimeRange | None:
    year = at.year if (month, day) <= (at.month, at.day) else at.year - 1
    return day_or_none(year, month, day, at, text)
