"""Test data shared by several test files: ready-made memories and scripted conversations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memstream.embedder import Embedder
from memstream.schemas import ChatMessage, MemoryNode, MemoryType, memory_id

OWNER = "demo"

#: Six food observations: enough for a reflection (threshold 6) to find the user's diet.
FOOD_MESSAGES = [
    "I eat oatmeal for breakfast every day.",
    "I love spicy Sichuan food.",
    "I cook dinner at home most nights.",
    "I stopped eating red meat last year.",
    "My favourite lunch is a big salad.",
    "I drink green tea instead of coffee.",
]


def observation(
    embedder: Embedder,
    text: str,
    when: datetime,
    source: str,
    *,
    owner: str = "demo",
    user: str = "alice",
    mid: str | None = None,
) -> MemoryNode:
    """A valid observation with its vector, as the worker would have written it."""
    return MemoryNode(
        memory_id=mid or memory_id(owner, user, [source], 0),
        owner_id=owner,
        user_id=user,
        memory_type=MemoryType.observation,
        content=text,
        message_time=when,
        valid_from=when,
        recorded_at=when,
        source_message_ids=[source],
        vector=embedder.embed_one(text).tolist(),
    )


class Script:
    """Messages per user; each ``say`` is its own window (sent days apart, idle gap)."""

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []

    def say(self, user: str, speaker: str, at: datetime, *texts: str) -> None:
        for i, text in enumerate(texts):
            n = len(self.messages)
            self.messages.append(
                ChatMessage(
                    message_id=f"{user}-{n}",
                    owner_id=OWNER,
                    user_id=user,
                    role="user",
                    speaker=speaker,
                    content=text,
                    sent_at=at + timedelta(seconds=i),
                )
            )


def scenario() -> Script:
    s = Script()
    t = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    s.say("pilot", "Sam", t, "Write a story where I am a pilot who lives in Paris.")
    s.say("alice", "Alice", t, "I work at Alibaba as a data engineer.")
    s.say("alice", "Alice", t + timedelta(weeks=6), "I just joined Meituan, first week done!")
    s.say("bob", "Bob", t, "I have a cat named Mochi.")
    s.say("bob", "Bob", t + timedelta(days=4), "I have a cat named Mochi.")
    s.say(
        "carol",
        "Carol",
        datetime(2024, 7, 10, 8, 0, tzinfo=UTC),
        "Two months ago I ran a marathon in Hangzhou.",
    )
    for i, text in enumerate(FOOD_MESSAGES):
        s.say("dave", "Dave", t + timedelta(days=i), text)
    s.say("li", "小李", t, "我在杭州工作，周末喜欢爬山。")
    return s


#: A valid chat message as a producer sends it (JSON object).
VALID = {
    "message_id": "m-1",
    "owner_id": "app",
    "user_id": "u-1",
    "role": "user",
    "content": "I like tea",
    "sent_at": "2024-07-10T09:30:00+08:00",
}
