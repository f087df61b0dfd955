"""Prompts are data: one TOML file per step and language (``en/``, ``zh/``), ``$``-templated."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

from memstream.llm.base import Message

LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class Prompt:
    step: str
    language: str
    system: str
    user: str

    def render(self, **values: str) -> list[Message]:
        """System + user messages; a missing value is an error, not a silent blank."""
        return [
            {"role": "system", "content": Template(self.system).substitute(values)},
            {"role": "user", "content": Template(self.user).substitute(values)},
        ]


@cache
def load_prompt(step: str, language: str) -> Prompt:
    """The prompt for ``step`` in ``language`` (anything but Chinese falls back to English)."""
    lang = "zh" if language.lower().startswith("zh") else "en"
    text = resources.files(__package__).joinpath(lang, f"{step}.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return Prompt(step=step, language=lang, system=data["system"], user=data["user"])


def detect_language(texts: list[str]) -> str:
    """``zh`` when CJK characters dominate the letters of ``texts``, else ``en``. Pure."""
    cjk = latin = 0
    for text in texts:
        for ch in text:
            if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf":
                cjk += 1
            elif ch.isalpha():
                latin += 1
    # A CJK character carries about as much as a short word: weigh it like four letters.
    return "zh" if cjk * 4 > latin else "en"
