"""Chat with memory: retrieve → system prompt (current time, memories, recent turns) → answer.

The prompt building is pure; the service wires retrieval, the model and the log around it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime

from memstream.llm.base import Message
from memstream.prompts import detect_language, load_prompt
from memstream.query.models import ChatTurn
from memstream.schemas.memory import MemoryNode
from memstream.search import render_prompt

MAX_RECENT = 20


def chat_messages(
    *,
    name: str,
    now: datetime,
    memories: Sequence[MemoryNode],
    recent: Sequence[ChatTurn],
    message: str,
) -> list[Message]:
    """System prompt + the new message, in the user's language."""
    language = detect_language([message, *(t.content for t in recent if t.role == "user")])
    prompt = load_prompt("chat", language)
    none = "（无）" if language == "zh" else "(none)"
    return prompt.render(
        name=name,
        now=now.strftime("%Y-%m-%d %H:%M:%S %A"),
        memories=render_prompt(memories) or none,
        recent="\n".join(f"{t.role}: {t.content}" for t in recent[-MAX_RECENT:]) or none,
        message=message,
    )


class RecentTurns:
    """The last turns per user that went through this service, for the next prompt (the
    worker's open window is not visible from here). Bounded per user and in users."""

    def __init__(self, per_user: int = MAX_RECENT, users: int = 10_000) -> None:
        self._per_user = per_user
        self._users = users
        self._turns: dict[str, deque[tuple[datetime, ChatTurn]]] = {}

    def add(self, key: str, when: datetime, turn: ChatTurn) -> None:
        if key not in self._turns and len(self._turns) >= self._users:
            self._turns.pop(next(iter(self._turns)))
        self._turns.setdefault(key, deque(maxlen=self._per_user)).append((when, turn))

    def since(self, key: str, after: datetime | None) -> list[ChatTurn]:
        """Turns newer than ``after`` (the newest memory's message time): not yet memories."""
        return [t for when, t in self._turns.get(key, ()) if after is None or when > after]

    def forget(self, key: str) -> None:
        self._turns.pop(key, None)
