"""Retrieval: recall channels, fusion and prompt rendering (used by the query service)."""

from memstream.search.fusion import Ranked, fuse, render_line, render_prompt
from memstream.search.hybrid import RetrievalMode, retrieve

__all__ = ["Ranked", "RetrievalMode", "fuse", "render_line", "render_prompt", "retrieve"]
