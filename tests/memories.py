"""Test data shared by several test files: ready-made memories and scripted conversations."""

from __future__ import annotations

from datetime import datetime

from memstream.embedder import Embedder
from memstream.schemas import MemoryNode, MemoryType, memory_id

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
