"""English time expressions: the ordered rule list and what its rules need.

Order is priority: a rule earlier in :data:`RULES` reads its words first, and a later rule
never reads words an earlier one took ("the day before yesterday" before "yesterday",
"May 3, 2024" before "May 3" before "May").
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from memstream.search.timeparse.calendar import (
    TimeRange,
    ago_range,
    day_or_none,
    days_from,
    month_range,
    part_of_day,
    past_day,
    past_month,
    shifted_range,
    weekday_range,
    weekend_range,
    year_range,
)
from memstream.search.timeparse.rules import Rule

_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "couple of": 2,
    "a couple of": 2,
    "few": 3,
    "a few": 3,
}


def _en_number(text: str) -> int | None:
    text = text.lower()
    return int(text) if text.isdigit() else _EN_NUMBERS.get(text)


_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH_RE = "|".join([*_MONTHS, *(m[:3] for m in _MONTHS if m != "may"), "sept"])
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY_RE = "|".join(_WEEKDAYS + [d[:3] for d in _WEEKDAYS])
_UNITS = {
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
}
_SHIFT = {"last": -1, "previous": -1, "past": -1, "this": 0, "next": 1, "coming": 1}


def _month_number(name: str) -> int:
    name = name.lower()
    for i, full in enumerate(_MONTHS, start=1):
        if full.startswith(name[:3]):
            return i
    raise ValueError(name)


_MONTHS_FULL = "|".join(m for m in _MONTHS if m != "may")
_PARTS = {"morning": (5, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 24)}


def _weekday_number(name: str) -> int:
    name = name.lower()[:3]
    return [d[:3] for d in _WEEKDAYS].index(name)


def _weekday_which(word: str) -> str:
    word = word.lower()
    return {"this": "this", "next": "next", "coming": "next"}.get(word, "last")


def _ago_en(m: re.Match[str], at: datetime) -> TimeRange | None:
    n = _en_number(m[1].removeprefix("a ") if m[1].lower().startswith("a ") else m[1])
    if n is None:
        return None
    return ago_range(n, _UNITS[m[2].lower()], at, m[0])


def _within(m: re.Match[str], at: datetime) -> TimeRange | None:
    n = _en_number(m[1])
    if n is None:
        return None
    unit = _UNITS[m[2].lower()]
    days = {"day": 1, "week": 7, "month": 31}[unit] * n
    return TimeRange(at - timedelta(days=days), at + timedelta(seconds=1), m[0])


def _shifted_month_name(m: re.Match[str], at: datetime) -> TimeRange:
    month = _month_number(m[2])
    which = m[1].lower()
    if which == "last":
        year = at.year - 1 if month >= at.month else at.year
    elif which == "next":
        year = at.year + 1 if month <= at.month else at.year
    else:
        year = at.year
    return month_range(year, month, at, m[0])


def _rules() -> list[Rule]:
    i = re.IGNORECASE
    return [
        (
            re.compile(r"\b(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b"),
            lambda m, at: days_from(date(int(m[1]), int(m[2]), int(m[3])), 1, at, m[0]),
        ),
        (
            re.compile(r"\bthe day before yesterday\b", i),
            lambda m, at: days_from(at.date() - timedelta(days=2), 1, at, m[0]),
        ),
        (
            re.compile(r"\byesterday (morning|afternoon|evening|night)\b", i),
            lambda m, at: part_of_day(at, *_PARTS[m[1].lower()], -1, m[0]),
        ),
        (
            re.compile(r"\b(this|tomorrow) (morning|afternoon|evening)\b|\btonight\b", i),
            lambda m, at: part_of_day(
                at,
                *_PARTS[(m[2] or "night").lower()],
                1 if (m[1] or "").lower() == "tomorrow" else 0,
                m[0],
            ),
        ),
        (
            re.compile(r"\byesterday\b", i),
            lambda m, at: days_from(at.date() - timedelta(days=1), 1, at, m[0]),
        ),
        (re.compile(r"\btoday\b", i), lambda m, at: days_from(at.date(), 1, at, m[0])),
        (
            re.compile(r"\btomorrow\b", i),
            lambda m, at: days_from(at.date() + timedelta(days=1), 1, at, m[0]),
        ),
        (
            re.compile(r"\b(last|this|next|past|previous|coming) weekend\b", i),
            lambda m, at: weekend_range(_SHIFT[m[1].lower()], at, m[0]),
        ),
        (
            re.compile(r"\b(?:on )?the weekend\b|\bover the weekend\b", i),
            lambda m, at: weekend_range(-1 if at.weekday() < 5 else 0, at, m[0]),
        ),
        (
            re.compile(
                r"\b(\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
                r"twelve|(?:a )?couple of|(?:a )?few) (days?|weeks?|months?|years?) ago\b",
                i,
            ),
            lambda m, at: _ago_en(m, at),
        ),
        (
            re.compile(
                r"\b(?:in |over |during )?the (?:last|past) (\d+|two|three|four|five|six|"
                r"seven|ten|few) (days|weeks|months)\b",
                i,
            ),
            lambda m, at: _within(m, at),
        ),
        (
            re.compile(rf"\b(last|this|next|previous|coming|past) ({_WEEKDAY_RE})\b", i),
            lambda m, at: weekday_range(_weekday_number(m[2]), at, _weekday_which(m[1]), m[0]),
        ),
        (
            re.compile(r"\b(last|this|next|previous|coming) (week|month|year)\b", i),
            lambda m, at: shifted_range(m[2].lower(), _SHIFT[m[1].lower()], at, m[0]),
        ),
        (
            # Bare weekdays only by full name: "sat" and "sun" are words too.
            re.compile(rf"\b(?:on )?({'|'.join(_WEEKDAYS)})\b", i),
            lambda m, at: weekday_range(_weekday_number(m[1]), at, "last", m[0]),
        ),
        (
            re.compile(rf"\b({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{4}})\b", i),
            lambda m, at: day_or_none(int(m[3]), _month_number(m[1]), int(m[2]), at, m[0]),
        ),
        (
            re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? ({_MONTH_RE}),? (\d{{4}})\b", i),
            lambda m, at: day_or_none(int(m[3]), _month_number(m[2]), int(m[1]), at, m[0]),
        ),
        (
            re.compile(rf"\b({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?\b", i),
            lambda m, at: past_day(_month_number(m[1]), int(m[2]), at, m[0]),
        ),
        (
            re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?({_MONTH_RE})\b", i),
            lambda m, at: past_day(_month_number(m[2]), int(m[1]), at, m[0]),
        ),
        (
            re.compile(rf"\b(last|this|next) ({_MONTH_RE})\b", i),
            lambda m, at: _shifted_month_name(m, at),
        ),
        (
            re.compile(rf"\b({_MONTH_RE}),? (\d{{4}})\b", i),
            lambda m, at: month_range(int(m[2]), _month_number(m[1]), at, m[0]),
        ),
        (
            re.compile(
                rf"\b(?:in|during|since|early|late|mid|of) ({_MONTH_RE})\b|\b({_MONTHS_FULL})\b", i
            ),
            lambda m, at: past_month(_month_number(m[1] or m[2]), at, m[0]),
        ),
        (
            # A year needs a preposition: "2000 photos" is not a time.
            re.compile(r"\b(?:in|during|since|of|back in|year) ((?:19|20)\d{2})\b", i),
            lambda m, at: year_range(int(m[1]), at, m[0]),
        ),
    ]


#: English rules, highest priority first.
RULES: list[Rule] = _rules()
