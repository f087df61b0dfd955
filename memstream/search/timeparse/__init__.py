"""Time expressions in queries, resolved by rules (English and Chinese) to time ranges.

Pure and LLM-free: ``resolve_time(query, at)`` returns the ranges the query speaks of,
relative to ``at`` (the request's time, in its timezone). Ranges are half-open
``[start, end)``. Rules live in ``en.py`` and ``zh.py``, each an ordered list (order is
priority); ``calendar.py`` does the arithmetic. A compact rule table rather than a
dependency: the registries' date parsers resolve a date in a sentence, not a range ("last
weekend", "上周末", "去年五月"), and none covers both languages.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from memstream.search.timeparse import en, zh
from memstream.search.timeparse.calendar import TimeRange
from memstream.search.timeparse.rules import Rule

__all__ = ["TimeRange", "resolve_time"]

#: Every rule, by priority: English then Chinese (their words never overlap).
RULES: list[Rule] = [*en.RULES, *zh.RULES]


def _matches(query: str, at: datetime) -> Iterator[tuple[int, int, TimeRange]]:
    taken: list[tuple[int, int]] = []
    for pattern, build in RULES:
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
