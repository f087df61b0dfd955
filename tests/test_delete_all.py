"""Deleting all of a user's memories deletes all of them, however many (on every backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from memstream.config import Settings
from memstream.consolidation.processor import JobProcessor
from memstream.embedder import Embedder
from memstream.schemas import DeleteMemoriesJob, MemoryEvent, MemoryNode, MemoryType, StoreStatus
from memstream.schemas.memory import memory_id
from memstream.sinks import MemoryFilter, MemoryStore

USERS_MEMORIES = 5000
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def nodes(user: str, n: int, rng: np.random.Generator) -> list[MemoryNode]:
    vectors = rng.normal(size=(n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        MemoryNode(
            memory_id=memory_id("big", user, [f"m{i}"], 0),
            owner_id="big",
            user_id=user,
            memory_type=MemoryType.observation,
            content=f"memory number {i}",
            message_time=T0 + timedelta(seconds=i),
            valid_from=T0 + timedelta(seconds=i),
            recorded_at=T0,
            source_message_ids=[f"m{i}"],
            store_status=StoreStatus.expired if i % 10 == 0 else StoreStatus.valid,
            vector=vectors[i].tolist(),
        )
        for i in range(n)
    ]


async def test_delete_all_pages_until_none_is_left(
    store: MemoryStore, embedder: Embedder, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    many = nodes("demo", USERS_MEMORIES, rng)
    for start in range(0, USERS_MEMORIES, 1000):
        await store.upsert(many[start : start + 1000])
    await store.upsert(nodes("neighbour", 3, rng))
    await store.refresh()
    everything = MemoryFilter(statuses=tuple(StoreStatus))
    assert await store.count("big", "demo", everything) == USERS_MEMORIES
    events: list[MemoryEvent] = []

    async def publish(event: MemoryEvent) -> None:
        events.append(event)

    processor = JobProcessor(Settings.load(data_dir=tmp_path), store, embedder, publish)
    job = DeleteMemoriesJob(job_id="del-all", owner_id="big", user_id="demo", memory_ids=None)
    [outcome] = await processor.process([job])
    assert outcome.error is None and outcome.applied == USERS_MEMORIES
    await store.refresh()
    assert await store.count("big", "demo", everything) == 0
    assert await store.count("big", "neighbour", everything) == 3  # another user's stay
    assert len(events) == USERS_MEMORIES and len({e.memory_id for e in events}) == USERS_MEMORIES
    assert {e.event_type.value for e in events} == {"delete"}
