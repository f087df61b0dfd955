"""The user's own name in a query: noise for recall, since every memory searched is theirs.

"Where does Alice work?" asked of Alice's memories matches, by name, her messages that
greet or quote somebody else ("Thanks Alice!" said to her is not hers), and pulls the dense
vector towards "a person called Alice". Dropping the name leaves "where does work": what
the question is about. Pure functions; the names come from the user's own memories.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SPACES = re.compile(r"\s+")


def has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def name_forms(name: str) -> list[str]:
    """How a text may name a person: a Western full name or its first name ("Caroline" of
    "Caroline Smith"); a Chinese full name, or its given name for names of three or more
    characters ("晓明" of "王晓明"), since Chinese rarely uses the surname alone."""
    name = _SPACES.sub(" ", name.strip())
    if not name:
        return []
    if has_cjk(name):
        return [name, name[1:]] if len(name) >= 3 else [name]
    first = name.split(" ")[0]
    return [name, first] if first != name and len(first) >= 2 else [name]


def _pattern(form: str) -> str:
    if has_cjk(form):
        return re.escape(form)  # no word boundaries inside Chinese text
    # Latin letters only around it, not \b: "Alice养了什么" names Alice too.
    return rf"(?<![A-Za-z0-9]){re.escape(form)}(?:'s|’s|s')?(?![A-Za-z0-9])"


def names_in(text: str, name: str) -> bool:
    return any(re.search(_pattern(f), text, re.IGNORECASE) for f in name_forms(name))


def strip_names(query: str, names: Iterable[str]) -> str:
    """``query`` without the given names (and their possessive). The query itself when
    nothing would be left, so a question that is only a name still searches."""
    forms = sorted({f for n in names for f in name_forms(n)}, key=len, reverse=True)
    if not forms:
        return query
    pattern = re.compile("|".join(_pattern(f) for f in forms), re.IGNORECASE)
    stripped = _SPACES.sub(" ", pattern.sub(" ", query)).strip()
    return stripped if re.search(r"\w", stripped) else query
