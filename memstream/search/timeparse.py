"""Time expressions in queries, resolved by rules (English and Chinese) to time ranges.

Pure and LLM-free: ``resolve_time(query, at)`` returns the ranges the query speaks of,
relative to ``at`` (the request's time, in its timezone). Ranges are half-open
``[start, end)``. A compact rule table rather than a dependency: the registries' date
parsers resolve a date in a sentence, not a range ("last weekend", "上周末", "去年五月"), and
none covers both languages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

__all__ = ["TimeRange", "resolve_time"]


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    text: str
    """The words that produced it (shown in a result's explanation)."""

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


# -- calendar helpers ------------------------------------------------------------------------


def _day(d: date, at: datetime) -> datetime:
    return datetime.combine(d, time(), tzinfo=at.tzinfo)


def _days(start: date, days: int, at: datetime, text: str) -> TimeRange:
    return TimeRange(_day(start, at), _day(start + timedelta(days=days), at), text)


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _month(year: int, month: int, at: datetime, text: str) -> TimeRange:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return TimeRange(_day(date(year, month, 1), at), _day(nxt, at), text)


def _year(year: int, at: datetime, text: str) -> TimeRange:
    return TimeRange(_day(date(year, 1, 1), at), _day(date(year + 1, 1, 1), at), text)


def _past_month(month: int, at: datetime, text: str) -> TimeRange:
    """A bare month name means its latest occurrence not after ``at``'s month."""
    year = at.year if month <= at.month else at.year - 1
    return _month(year, month, at, text)


def _weekday(target: int, at: datetime, which: str, text: str) -> TimeRange:
    """``which``: "last"/"" = the latest such day before today; "this" = in this week;
    "next" = the first such day after today."""
    today = at.date()
    if which == "this":
        d = _week_start(today) + timedelta(days=target)
    elif which == "next":
        d = today + timedelta(days=(target - today.weekday() - 1) % 7 + 1)
    else:
        d = today - timedelta(days=(today.weekday() - target - 1) % 7 + 1)
    return _days(d, 1, at, text)


def _weekend(offset_weeks: int, at: datetime, text: str) -> TimeRange:
    saturday = _week_start(at.date()) + timedelta(days=5 + 7 * offset_weeks)
    return _days(saturday, 2, at, text)


def _ago(n: int, unit: str, at: datetime, text: str) -> TimeRange:
    today = at.date()
    if unit == "day":
        return _days(today - timedelta(days=n), 1, at, text)
    if unit == "week":
        return _days(_week_start(today) - timedelta(weeks=n), 7, at, text)
    if unit == "month":
        return _month(at.year, at.month - n, at, text)
    return _year(at.year - n, at, text)


def _part_of_day(
    at: datetime, start_hour: int, end_hour: int, offset_days: int, text: str
) -> TimeRange:
    d = at.date() + timedelta(days=offset_days)
    return TimeRange(
        datetime.combine(d, time(start_hour), tzinfo=at.tzinfo),
        datetime.combine(d, time(), tzinfo=at.tzinfo) + timedelta(hours=end_hour),
        text,
    )


# -- numbers ---------------------------------------------------------------------------------

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
_ZH_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}


def _zh_number(text: str) -> int | None:
    """Arabic digits or Chinese numerals up to 99 (十, 十二, 二十, 二十三)."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        t = _ZH_DIGITS.get(tens, 0) if tens else 1
        o = _ZH_DIGITS.get(ones, 0) if ones else 0
        if (tens and tens not in _ZH_DIGITS) or (ones and ones not in _ZH_DIGITS):
            return None
        return t * 10 + o
    if len(text) == 1 and text in _ZH_DIGITS:
        return _ZH_DIGITS[text]
    return None


def _en_number(text: str) -> int | None:
    text = text.lower()
    return int(text) if text.isdigit() else _EN_NUMBERS.get(text)


# -- the rule tables ---------------------------------------------------------------------------

Rule = tuple[re.Pattern[str], Callable[[re.Match[str], datetime], TimeRange | None]]

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
_ZH_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
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
_ZH_UNITS = {
    "天": "day",
    "日": "day",
    "周": "week",
    "星期": "week",
    "个星期": "week",
    "个礼拜": "week",
    "礼拜": "week",
    "个月": "month",
    "月": "month",
    "年": "year",
}
_SHIFT = {"last": -1, "previous": -1, "past": -1, "this": 0, "next": 1, "coming": 1}
_ZH_SHIFT = {"上": -1, "上个": -1, "这": 0, "这个": 0, "本": 0, "下": 1, "下个": 1}


def _month_number(name: str) -> int:
    name = name.lower()
    for i, full in enumerate(_MONTHS, start=1):
        if full.startswith(name[:3]):
            return i
    raise ValueError(name)


def _shifted(unit: str, shift: int, at: datetime, text: str) -> TimeRange:
    if unit == "week":
        return _days(_week_start(at.date()) + timedelta(weeks=shift), 7, at, text)
    if unit == "month":
        return _month(at.year, at.month + shift, at, text)
    return _year(at.year + shift, at, text)


def _en_rules() -> list[Rule]:
    i = re.IGNORECASE
    return [
        (
            re.compile(r"\b(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b"),
            lambda m, at: _days(date(int(m[1]), int(m[2]), int(m[3])), 1, at, m[0]),
        ),
        (
            re.compile(r"\bthe day before yesterday\b", i),
            lambda m, at: _days(at.date() - timedelta(days=2), 1, at, m[0]),
        ),
        (
            re.compile(r"\byesterday (morning|afternoon|evening|night)\b", i),
            lambda m, at: _part_of_day(at, *_PARTS[m[1].lower()], -1, m[0]),
        ),
        (
            re.compile(r"\b(this|tomorrow) (morning|afternoon|evening)\b|\btonight\b", i),
            lambda m, at: _part_of_day(
                at,
                *_PARTS[(m[2] or "night").lower()],
                1 if (m[1] or "").lower() == "tomorrow" else 0,
                m[0],
            ),
        ),
        (
            re.compile(r"\byesterday\b", i),
            lambda m, at: _days(at.date() - timedelta(days=1), 1, at, m[0]),
        ),
        (re.compile(r"\btoday\b", i), lambda m, at: _days(at.date(), 1, at, m[0])),
        (
            re.compile(r"\btomorrow\b", i),
            lambda m, at: _days(at.date() + timedelta(days=1), 1, at, m[0]),
        ),
        (
            re.compile(r"\b(last|this|next|past|previous|coming) weekend\b", i),
            lambda m, at: _weekend(_SHIFT[m[1].lower()], at, m[0]),
        ),
        (
            re.compile(r"\b(?:on )?the weekend\b|\bover the weekend\b", i),
            lambda m, at: _weekend(-1 if at.weekday() < 5 else 0, at, m[0]),
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
            lambda m, at: _weekday(_weekday_number(m[2]), at, _weekday_which(m[1]), m[0]),
        ),
        (
            re.compile(r"\b(last|this|next|previous|coming) (week|month|year)\b", i),
            lambda m, at: _shifted(m[2].lower(), _SHIFT[m[1].lower()], at, m[0]),
        ),
        (
            # Bare weekdays only by full name: "sat" and "sun" are words too.
            re.compile(rf"\b(?:on )?({'|'.join(_WEEKDAYS)})\b", i),
            lambda m, at: _weekday(_weekday_number(m[1]), at, "last", m[0]),
        ),
        (
            re.compile(rf"\b({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{4}})\b", i),
            lambda m, at: _safe_day(int(m[3]), _month_number(m[1]), int(m[2]), at, m[0]),
        ),
        (
            re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? ({_MONTH_RE}),? (\d{{4}})\b", i),
            lambda m, at: _safe_day(int(m[3]), _month_number(m[2]), int(m[1]), at, m[0]),
        ),
        (
            re.compile(rf"\b({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?\b", i),
            lambda m, at: _past_day(_month_number(m[1]), int(m[2]), at, m[0]),
        ),
        (
            re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?({_MONTH_RE})\b", i),
            lambda m, at: _past_day(_month_number(m[2]), int(m[1]), at, m[0]),
        ),
        (
            re.compile(rf"\b(last|this|next) ({_MONTH_RE})\b", i),
            lambda m, at: _shifted_month_name(m, at),
        ),
        (
            re.compile(rf"\b({_MONTH_RE}),? (\d{{4}})\b", i),
            lambda m, at: _month(int(m[2]), _month_number(m[1]), at, m[0]),
        ),
        (
            re.compile(
                rf"\b(?:in|during|since|early|late|mid|of) ({_MONTH_RE})\b|\b({_MONTHS_FULL})\b", i
            ),
            lambda m, at: _past_month(_month_number(m[1] or m[2]), at, m[0]),
        ),
        (
            # A year needs a preposition: "2000 photos" is not a time.
            re.compile(r"\b(?:in|during|since|of|back in|year) ((?:19|20)\d{2})\b", i),
            lambda m, at: _year(int(m[1]), at, m[0]),
        ),
    ]


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
    return _ago(n, _UNITS[m[2].lower()], at, m[0])


def _within(m: re.Match[str], at: datetime) -> TimeRange | None:
    n = _en_number(m[1])
    if n is None:
        return None
    unit = _UNITS[m[2].lower()]
    days = {"day": 1, "week": 7, "month": 31}[unit] * n
    return TimeRange(at - timedelta(days=days), at + timedelta(seconds=1), m[0])


def _safe_day(year: int, month: int, day: int, at: datetime, text: str) -> TimeRange | None:
    try:
        return _days(date(year, month, day), 1, at, text)
    except ValueError:
        return None


def _past_day(month: int, day: int, at: datetime, text: str) -> TimeRange | None:
    year = at.year if (month, day) <= (at.month, at.day) else at.year - 1
    return _safe_day(year, month, day, at, text)


def _shifted_month_name(m: re.Match[str], at: datetime) -> TimeRange:
    month = _month_number(m[2])
    which = m[1].lower()
    if which == "last":
        year = at.year - 1 if month >= at.month else at.year
    elif which == "next":
        year = at.year + 1 if month <= at.month else at.year
    else:
        year = at.year
    return _month(year, month, at, m[0])


def _zh_rules() -> list[Rule]:
    num = r"(\d+|[零一二两三四五六七八九十]{1,3})"
    return [
        (
            re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]"),
            lambda m, at: _safe_day(int(m[1]), int(m[2]), int(m[3]), at, m[0]),
        ),
        (re.compile(r"前天"), lambda m, at: _days(at.date() - timedelta(days=2), 1, at, m[0])),
        (
            re.compile(r"昨(?:天)?(?:早上|上午)|昨早"),
            lambda m, at: _part_of_day(at, 5, 12, -1, m[0]),
        ),
        (re.compile(r"昨(?:天)?(?:晚上|晚)"), lambda m, at: _part_of_day(at, 18, 24, -1, m[0])),
        (
            re.compile(r"今(?:天)?(?:早上|上午)|今早"),
            lambda m, at: _part_of_day(at, 5, 12, 0, m[0]),
        ),
        (re.compile(r"今天下午"), lambda m, at: _part_of_day(at, 12, 18, 0, m[0])),
        (re.compile(r"今(?:天)?晚(?:上)?"), lambda m, at: _part_of_day(at, 18, 24, 0, m[0])),
        (re.compile(r"昨天|昨日"), lambda m, at: _days(at.date() - timedelta(days=1), 1, at, m[0])),
        (re.compile(r"今天|今日"), lambda m, at: _days(at.date(), 1, at, m[0])),
        (re.compile(r"明天"), lambda m, at: _days(at.date() + timedelta(days=1), 1, at, m[0])),
        (re.compile(r"后天"), lambda m, at: _days(at.date() + timedelta(days=2), 1, at, m[0])),
        (
            re.compile(r"(上|这|本|下)个?(?:周末|星期末)"),
            lambda m, at: _weekend(_ZH_SHIFT[m[1]], at, m[0]),
        ),
        (re.compile(r"周末"), lambda m, at: _weekend(-1 if at.weekday() < 5 else 0, at, m[0])),
        (
            re.compile(num + r"(天|个星期|个礼拜|星期|周|个月|年)(?:之)?前"),
            lambda m, at: _ago_zh(m, at),
        ),
        (re.compile(r"(上|这|本|下)个?(?:周|星期|礼拜)([一二三四五六日天])"), _zh_week_day),
        (
            re.compile(r"(上|这|本|下)(?:个)?(?:周|星期|礼拜)"),
            lambda m, at: _shifted("week", _ZH_SHIFT[m[1]], at, m[0]),
        ),
        (
            re.compile(r"(上|这|本|下)个?月"),
            lambda m, at: _shifted("month", _ZH_SHIFT[m[1]], at, m[0]),
        ),
        (
            re.compile(r"(?:周|星期|礼拜)([一二三四五六日天])"),
            lambda m, at: _weekday(_ZH_WEEKDAY[m[1]], at, "last", m[0]),
        ),
        (
            re.compile(r"(\d{4})年" + num + r"月"),
            lambda m, at: _zh_month(int(m[1]), m[2], at, m[0]),
        ),
        (
            re.compile(r"(去年|今年|明年|前年)" + num + r"月"),
            lambda m, at: _zh_month(at.year + _ZH_YEAR[m[1]], m[2], at, m[0]),
        ),
        (re.compile(num + r"月" + num + r"[日号]"), lambda m, at: _zh_month_day(m, at)),
        (re.compile(r"(\d{4})年"), lambda m, at: _year(int(m[1]), at, m[0])),
        (
            re.compile(r"去年|今年|明年|前年"),
            lambda m, at: _year(at.year + _ZH_YEAR[m[0]], at, m[0]),
        ),
        (re.compile(num + r"月(?:份)?"), lambda m, at: _zh_bare_month(m, at)),
    ]


_ZH_YEAR = {"前年": -2, "去年": -1, "今年": 0, "明年": 1}


def _zh_week_day(m: re.Match[str], at: datetime) -> TimeRange:
    shift = _ZH_SHIFT[m[1]]
    d = _week_start(at.date()) + timedelta(weeks=shift, days=_ZH_WEEKDAY[m[2]])
    return _days(d, 1, at, m[0])


def _ago_zh(m: re.Match[str], at: datetime) -> TimeRange | None:
    n = _zh_number(m[1])
    if n is None:
        return None
    return _ago(n, _ZH_UNITS[m[2]], at, m[0])


def _zh_month(year: int, month_text: str, at: datetime, text: str) -> TimeRange | None:
    month = _zh_number(month_text)
    if month is None or not 1 <= month <= 12:
        return None
    return _month(year, month, at, text)


def _zh_month_day(m: re.Match[str], at: datetime) -> TimeRange | None:
    month, day = _zh_number(m[1]), _zh_number(m[2])
    if month is None or day is None or not 1 <= month <= 12:
        return None
    return _past_day(month, day, at, m[0])


def _zh_bare_month(m: re.Match[str], at: datetime) -> TimeRange | None:
    month = _zh_number(m[1])
    if month is None or not 1 <= month <= 12:
        return None
    return _past_month(month, at, m[0])


_RULES: list[Rule] = [*_en_rules(), *_zh_rules()]


def _matches(query: str, at: datetime) -> Iterator[tuple[int, int, TimeRange]]:
    taken: list[tuple[int, int]] = []
    for pattern, build in _RULES:
        for m in pattern.finditer(query):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue  # a more specific rule already read these words
            try:
                found = build(m, at)
            except (ValueError, OverflowError):
                found = None
            if found is not None:
                taken.append((m.start(), m.end()))
                yield m.start(), m.end(), found


def resolve_time(query: str, at: datetime) -> list[TimeRange]:
    """The time ranges ``query`` mentions, in the order they appear; [] when none."""
    if at.tzinfo is None:
        raise ValueError("`at` must carry a timezone")
    return [r for _, _, r in sorted(_matches(query, at), key=lambda t: t[0])]
