"""Synthetic data for the benchmarks: sentences about a user's life, and observations built
from them as LLM-free consolidation writes them."""

from __future__ import annotations

import random
from datetime import datetime

from memstream.schemas import MemoryNode, MemoryType, memory_id

#: The benchmarks' owner id.
OWNER = "bench"

SUBJECTS = [
    "tennis",
    "hiking",
    "sushi",
    "violin",
    "my sister",
    "the new job",
    "Hangzhou",
    "my dog",
    "marathon training",
    "pottery class",
    "a trip to Yunnan",
    "coffee",
    "chess",
    "my landlord",
    "the dentist",
    "salsa lessons",
    "a book club",
    "gardening",
    "my startup",
    "the flu",
]
VERBS = [
    "I started",
    "I stopped",
    "I really enjoy",
    "I am worried about",
    "I talked about",
    "I spent the weekend on",
    "I want to try",
    "I gave up",
    "I keep thinking about",
]


def sentence(rng: random.Random, i: int) -> str:
    return f"{rng.choice(VERBS)} {rng.choice(SUBJECTS)} ({i}) with {rng.choice(SUBJECTS)}."


def observation(
    user: int, i: int, content: str, when: datetime, vector: list[float], model: str
) -> MemoryNode:
    """The i-th observation of user ``u{user}``, from message ``m{i}``."""
    return MemoryNode(
        memory_id=memory_id(OWNER, f"u{user}", [f"m{i}"], 0),
        owner_id=OWNER,
        user_id=f"u{user}",
        memory_type=MemoryType.observation,
        content=content,
        message_time=when,
        valid_from=when,
        recorded_at=when,
        source_message_ids=[f"m{i}"],
        vector=vector,
        embedding_model=model,
    )
