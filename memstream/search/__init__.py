"""Retrieval: recall channels, fusion and prompt rendering (used by the query service)."""

from memstream.search.fusion import Ranked, fuse, render_line, render_prompt
from memstream.search.hybrid import RetrievalMode, retrieve
from memstream.search.timeparse import TimeRange, resolve_time

__all__ = [
    "Ranked",
    "RetrievalMode",
    "TimeRange",
    "fuse",
    "render_line",
    "render_prompt",
    "resolve_time",
    "retrieve",
]
