"""Time expressions (en + zh) resolve to the right ranges relative to the request time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from memstream.search.timeparse import resolve_time

TZ = timezone(timedelta(hours=8))
AT = datetime(2024, 7, 10, 15, 0, tzinfo=TZ)  # a Wednesday afternoon


def d(y: int, m: int, day: int, h: int = 0) -> datetime:
    return datetime(y, m, day, h, tzinfo=TZ)


CASES = [
    # English: days and parts of days
    ("what did I eat yesterday?", d(2024, 7, 9), d(2024, 7, 10)),
    ("the day before yesterday", d(2024, 7, 8), d(2024, 7, 9)),
    ("plans for today", d(2024, 7, 10), d(2024, 7, 11)),
    ("what's on tomorrow", d(2024, 7, 11), d(2024, 7, 12)),
    ("what did I say this morning", d(2024, 7, 10, 5), d(2024, 7, 10, 12)),
    ("yesterday evening", d(2024, 7, 9, 18), d(2024, 7, 10)),
    ("tonight", d(2024, 7, 10, 18), d(2024, 7, 11)),
    # weekends and weeks
    ("What did I do last weekend?", d(2024, 7, 6), d(2024, 7, 8)),
    ("this weekend", d(2024, 7, 13), d(2024, 7, 15)),
    ("next weekend", d(2024, 7, 20), d(2024, 7, 22)),
    ("anything over the weekend?", d(2024, 7, 6), d(2024, 7, 8)),
    ("last week", d(2024, 7, 1), d(2024, 7, 8)),
    ("this week", d(2024, 7, 8), d(2024, 7, 15)),
    ("next week", d(2024, 7, 15), d(2024, 7, 22)),
    # months and years
    ("last month", d(2024, 6, 1), d(2024, 7, 1)),
    ("this month", d(2024, 7, 1), d(2024, 8, 1)),
    ("next month", d(2024, 8, 1), d(2024, 9, 1)),
    ("last year", d(2023, 1, 1), d(2024, 1, 1)),
    ("this year", d(2024, 1, 1), d(2025, 1, 1)),
    # relative amounts
    ("two months ago", d(2024, 5, 1), d(2024, 6, 1)),
    ("3 days ago", d(2024, 7, 7), d(2024, 7, 8)),
    ("a week ago", d(2024, 7, 1), d(2024, 7, 8)),
    ("a couple of years ago", d(2022, 1, 1), d(2023, 1, 1)),
    ("in the last 3 days", AT - timedelta(days=3), AT + timedelta(seconds=1)),
    # weekdays
    ("last Monday", d(2024, 7, 8), d(2024, 7, 9)),
    ("on Friday", d(2024, 7, 5), d(2024, 7, 6)),
    ("next Friday", d(2024, 7, 12), d(2024, 7, 13)),
    ("this Friday", d(2024, 7, 12), d(2024, 7, 13)),
    ("last Wednesday", d(2024, 7, 3), d(2024, 7, 4)),
    # calendar dates
    ("in May", d(2024, 5, 1), d(2024, 6, 1)),
    ("in August", d(2023, 8, 1), d(2023, 9, 1)),
    ("last May", d(2024, 5, 1), d(2024, 6, 1)),
    ("May 2023", d(2023, 5, 1), d(2023, 6, 1)),
    ("on May 5th, 2023", d(2023, 5, 5), d(2023, 5, 6)),
    ("May 5", d(2024, 5, 5), d(2024, 5, 6)),
    ("the 5th of May", d(2024, 5, 5), d(2024, 5, 6)),
    ("December 25", d(2023, 12, 25), d(2023, 12, 26)),
    ("back in 2022", d(2022, 1, 1), d(2023, 1, 1)),
    ("on 2024-05-01", d(2024, 5, 1), d(2024, 5, 2)),
    # Chinese: days and parts of days
    ("我昨天吃了什么", d(2024, 7, 9), d(2024, 7, 10)),
    ("前天", d(2024, 7, 8), d(2024, 7, 9)),
    ("今天", d(2024, 7, 10), d(2024, 7, 11)),
    ("明天", d(2024, 7, 11), d(2024, 7, 12)),
    ("后天", d(2024, 7, 12), d(2024, 7, 13)),
    ("今天早上", d(2024, 7, 10, 5), d(2024, 7, 10, 12)),
    ("昨晚我说了什么", d(2024, 7, 9, 18), d(2024, 7, 10)),
    # weekends, weeks, months, years
    ("我上周末做了什么", d(2024, 7, 6), d(2024, 7, 8)),
    ("这周末", d(2024, 7, 13), d(2024, 7, 15)),
    ("下周末", d(2024, 7, 20), d(2024, 7, 22)),
    ("上周", d(2024, 7, 1), d(2024, 7, 8)),
    ("这周", d(2024, 7, 8), d(2024, 7, 15)),
    ("下个星期", d(2024, 7, 15), d(2024, 7, 22)),
    ("上个月", d(2024, 6, 1), d(2024, 7, 1)),
    ("这个月", d(2024, 7, 1), d(2024, 8, 1)),
    ("下个月", d(2024, 8, 1), d(2024, 9, 1)),
    ("去年", d(2023, 1, 1), d(2024, 1, 1)),
    ("今年", d(2024, 1, 1), d(2025, 1, 1)),
    ("前年", d(2022, 1, 1), d(2023, 1, 1)),
    # relative amounts
    ("三天前", d(2024, 7, 7), d(2024, 7, 8)),
    ("两个月前", d(2024, 5, 1), d(2024, 6, 1)),
    ("一年前", d(2023, 1, 1), d(2024, 1, 1)),
    ("十天前", d(2024, 6, 30), d(2024, 7, 1)),
    ("两周前", d(2024, 6, 24), d(2024, 7, 1)),
    # weekdays
    ("上周三", d(2024, 7, 3), d(2024, 7, 4)),
    ("下周一", d(2024, 7, 15), d(2024, 7, 16)),
    ("这周五", d(2024, 7, 12), d(2024, 7, 13)),
    ("周一", d(2024, 7, 8), d(2024, 7, 9)),
    ("星期天", d(2024, 7, 7), d(2024, 7, 8)),
    # calendar dates
    ("去年五月", d(2023, 5, 1), d(2023, 6, 1)),
    ("五月", d(2024, 5, 1), d(2024, 6, 1)),
    ("十二月", d(2023, 12, 1), d(2024, 1, 1)),
    ("5月3日", d(2024, 5, 3), d(2024, 5, 4)),
    ("2023年5月", d(2023, 5, 1), d(2023, 6, 1)),
    ("2023年", d(2023, 1, 1), d(2024, 1, 1)),
    ("2024年5月1日", d(2024, 5, 1), d(2024, 5, 2)),
]


@pytest.mark.parametrize(("query", "start", "end"), CASES, ids=[c[0] for c in CASES])
def test_expression(query: str, start: datetime, end: datetime) -> None:
    (found,) = resolve_time(query, AT)
    assert (found.start, found.end) == (start, end), found
    assert found.text and found.text in query


def test_enough_cases() -> None:
    zh = [c for c in CASES if any("\u4e00" <= ch <= "\u9fff" for ch in c[0])]
    assert len(CASES) - len(zh) >= 20 and len(zh) >= 20


@pytest.mark.parametrize(
    "query",
    [
        "What is my favourite food?",
        "I sat in the sun",
        "I have 2000 photos",
        "May I ask?",
        "我喜欢吃什么",
        "",
        "where do I work",
    ],
)
def test_no_time(query: str) -> None:
    assert resolve_time(query, AT) == []


def test_several_ranges_in_order() -> None:
    ranges = resolve_time("yesterday or last weekend?", AT)
    assert [r.text for r in ranges] == ["yesterday", "last weekend"]


def test_at_must_be_aware() -> None:
    with pytest.raises(ValueError):
        resolve_time("yesterday", datetime(2024, 7, 10))
