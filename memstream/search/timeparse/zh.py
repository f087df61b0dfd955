"""Chinese time expressions: the ordered rule list and what its rules need.

Order is priority: a rule earlier in :data:`RULES` reads its characters first, and a later
rule never reads characters an earlier one took ("昨天晚上" before "昨天", "2024年5月3日"
before "5月3日" before "5月").
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

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
    week_start,
    weekday_range,
    weekend_range,
    year_range,
)
from memstream.search.timeparse.rules import Rule

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


_ZH_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
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
_ZH_SHIFT = {"上": -1, "上个": -1, "这": 0, "这个": 0, "本": 0, "下": 1, "下个": 1}


_ZH_YEAR = {"前年": -2, "去年": -1, "今年": 0, "明年": 1}


def _zh_week_day(m: re.Match[str], at: datetime) -> TimeRange:
    shift = _ZH_SHIFT[m[1]]
    d = week_start(at.date()) + timedelta(weeks=shift, days=_ZH_WEEKDAY[m[2]])
    return days_from(d, 1, at, m[0])


def _ago_zh(m: re.Match[str], at: datetime) -> TimeRange | None:
    n = _zh_number(m[1])
    if n is None:
        return None
    return ago_range(n, _ZH_UNITS[m[2]], at, m[0])


def _zh_month(year: int, month_text: str, at: datetime, text: str) -> TimeRange | None:
    month = _zh_number(month_text)
    if month is None or not 1 <= month <= 12:
        return None
    return month_range(year, month, at, text)


def _zh_month_day(m: re.Match[str], at: datetime) -> TimeRange | None:
    month, day = _zh_number(m[1]), _zh_number(m[2])
    if month is None or day is None or not 1 <= month <= 12:
        return None
    return past_day(month, day, at, m[0])


def _zh_bare_month(m: re.Match[str], at: datetime) -> TimeRange | None:
    month = _zh_number(m[1])
    if month is None or not 1 <= month <= 12:
        return None
    return past_month(month, at, m[0])


def _rules() -> list[Rule]:
    num = r"(\d+|[零一二两三四五六七八九十]{1,3})"
    return [
        (
            re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]"),
            lambda m, at: day_or_none(int(m[1]), int(m[2]), int(m[3]), at, m[0]),
        ),
        (re.compile(r"前天"), lambda m, at: days_from(at.date() - timedelta(days=2), 1, at, m[0])),
        (
            re.compile(r"昨(?:天)?(?:早上|上午)|昨早"),
            lambda m, at: part_of_day(at, 5, 12, -1, m[0]),
        ),
        (re.compile(r"昨(?:天)?(?:晚上|晚)"), lambda m, at: part_of_day(at, 18, 24, -1, m[0])),
        (
            re.compile(r"今(?:天)?(?:早上|上午)|今早"),
            lambda m, at: part_of_day(at, 5, 12, 0, m[0]),
        ),
        (re.compile(r"今天下午"), lambda m, at: part_of_day(at, 12, 18, 0, m[0])),
        (re.compile(r"今(?:天)?晚(?:上)?"), lambda m, at: part_of_day(at, 18, 24, 0, m[0])),
        (
            re.compile(r"昨天|昨日"),
            lambda m, at: days_from(at.date() - timedelta(days=1), 1, at, m[0]),
        ),
        (re.compile(r"今天|今日"), lambda m, at: days_from(at.date(), 1, at, m[0])),
        (re.compile(r"明天"), lambda m, at: days_from(at.date() + timedelta(days=1), 1, at, m[0])),
        (re.compile(r"后天"), lambda m, at: days_from(at.date() + timedelta(days=2), 1, at, m[0])),
        (
            re.compile(r"(上|这|本|下)个?(?:周末|星期末)"),
            lambda m, at: weekend_range(_ZH_SHIFT[m[1]], at, m[0]),
        ),
        (re.compile(r"周末"), lambda m, at: weekend_range(-1 if at.weekday() < 5 else 0, at, m[0])),
        (
            re.compile(num + r"(天|个星期|个礼拜|星期|周|个月|年)(?:之)?前"),
            lambda m, at: _ago_zh(m, at),
        ),
        (re.compile(r"(上|这|本|下)个?(?:周|星期|礼拜)([一二三四五六日天])"), _zh_week_day),
        (
            re.compile(r"(上|这|本|下)(?:个)?(?:周|星期|礼拜)"),
            lambda m, at: shifted_range("week", _ZH_SHIFT[m[1]], at, m[0]),
        ),
        (
            re.compile(r"(上|这|本|下)个?月"),
            lambda m, at: shifted_range("month", _ZH_SHIFT[m[1]], at, m[0]),
        ),
        (
            re.compile(r"(?:周|星期|礼拜)([一二三四五六日天])"),
            lambda m, at: weekday_range(_ZH_WEEKDAY[m[1]], at, "last", m[0]),
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
        (re.compile(r"(\d{4})年"), lambda m, at: year_range(int(m[1]), at, m[0])),
        (
            re.compile(r"去年|今年|明年|前年"),
            lambda m, at: year_range(at.year + _ZH_YEAR[m[0]], at, m[0]),
        ),
        (re.compile(num + r"月(?:份)?"), lambda m, at: _zh_bare_month(m, at)),
    ]


#: Chinese rules, highest priority first.
RULES: list[Rule] = _rules()
