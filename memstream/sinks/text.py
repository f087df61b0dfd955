"""Text preparation for BM25: word tokens, with CJK split into characters.

SQLite's unicode61 tokenizer treats a run of Han characters as one token, so "我喜欢网球"
would only match itself. Spacing CJK characters out (as Elasticsearch's standard analyzer
does) makes Chinese searchable by character, the usual baseline for BM25 on Chinese.
"""

from __future__ import annotations

import re

from memstream.schemas.memory import MemoryNode

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+", re.UNICODE)

#: Words too common to help recall in a per-user corpus (English); kept small on purpose.
_STOPWORDS_TEXT = """
    a an and are as at be but by did do does for from had has have i if in is it its me my of
    on or our so that the their them they this to was we were what when where which who why
    will with you your
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; each CJK character is a token of its own."""
    return [t.lower() for t in _TOKEN.findall(text)]


def searchable_text(node: MemoryNode) -> str:
    """What the keyword index holds for a memory: its content and the turn it answered."""
    return f"{node.content}\n{node.context}" if node.context else node.content


def index_text(text: str) -> str:
    """The form stored in the full-text index."""
    return " ".join(tokens(text))


def query_terms(text: str, *, limit: int = 64) -> list[str]:
    """Distinct, non-stopword terms of a query, in order."""
    seen: dict[str, None] = {}
    for token in tokens(text):
        if token not in STOPWORDS:
            seen.setdefault(token, None)
    return list(seen)[:limit]
