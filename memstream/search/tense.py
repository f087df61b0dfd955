"""Does a query ask about the present? Then the newest relevant memory should win.

"Where does Alice work?" wants her current employer; "Where did Alice work in 2022?" and
"When did she join Meituan?" want history, where a recency lift only gets in the way
(measured on LoCoMo dev: a blanket lift of 0.15 cost 0.014 recall; its questions are mostly
about past events). Pure; English by auxiliaries and time words, Chinese by time words.
"""

from __future__ import annotations

import re

_PAST_EN = re.compile(
    r"\b(?:did|was|were|had|used to|before|ago|previous(?:ly)?|former(?:ly)?|first|ever|"
    r"originally|back then|in the past|last (?:year|month|week)|yesterday|(?:19|20)\d\d)\b",
    re.IGNORECASE,
)
_PRESENT_EN = re.compile(
    r"\b(?:now|currently|current|these days|nowadays|at the moment|still|anymore|today|"
    r"latest|newest|lately|does|do|is|are|has|have)\b",
    re.IGNORECASE,
)
_PAST_ZH = re.compile(
    r"以前|之前|过去|曾经|当时|那时|什么时候|何时|哪天|哪一天|几月|去年|上个月|上周|原来|起初|最初"
)
_PRESENT_ZH = re.compile(r"现在|目前|如今|最近|眼下|当前|正在|还在|近来|这些天|如今")


def asks_past(query: str) -> bool:
    """True when the query speaks of the past (history is wanted, not the current state)."""
    return bool(_PAST_EN.search(query) or _PAST_ZH.search(query))


def asks_present(query: str) -> bool:
    """True when the query speaks of the present and not of the past."""
    if asks_past(query):
        return False
    return bool(_PRESENT_EN.search(query) or _PRESENT_ZH.search(query))
