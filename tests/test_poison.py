"""Poison input through the real worker: records far over any limit, and valid windows heavy
with metadata, must never stop ingestion. Every valid message around them becomes a memory,
on every partition, with no restart; every poison record is dead-lettered within bounds."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from memstream.config import Settings
from memstream.schemas import ChatMessage, DlqReason
from memstream.sinks import MemoryFilter, MemoryStore, open_store
from memstream.streams.partitioning import partition_for
from memstream.streams.topics import create_topics
from tests.support.faults import FaultOutcome, record
from tests.support.pipeline import (
    Worker,
    dead_letters,
    pipeline_env,
    read_topic,
    settings_from,
    wait_for,
)
from tests.support.servers import Tansu

pytestmark = [pytest.mark.servers, pytest.mark.faults]

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
PARTITIONS = 4


def chat(user: int, i: int, **extra: object) -> ChatMessage:
    return ChatMessage.model_validate(
        {
            "message_id": f"u{user}-m{i}",
            "owner_id": "acme",
            "user_id": f"user-{user:03d}",
            "role": "user",
            "content": f"User {user} says: I took up hobby number {i} this spring.",
            "sent_at": T0 + timedelta(minutes=user, seconds=i),
            **extra,
        }
    )


async def produce_raw(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> None:
    """As a careless client would: a producer that allows 16 MiB records."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, max_request_size=2**24
    )
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.kafka.messages_topic, value=value, key=key)
    finally:
        await producer.stop()


async def memories_of(store: MemoryStore, users: list[int]) -> Counter[str]:
    """Source message id -> how many memories cite it."""
    found: Counter[str] = Counter()
    for user in users:
        for node in await store.list_memories("acme", f"user-{user:03d}", MemoryFilter()):
            found.update(node.source_message_ids)
    return found


async def run_until_remembered(
    settings: Settings,
    env: dict[str, str],
    tmp_path: Path,
    want: set[str],
    users: list[int],
    *,
    fault: str,
    cases: int,
) -> Worker:
    worker = Worker(env, tmp_path / "worker.log")
    try:
        async with open_store(settings.store, dimensions=384) as store:

            async def remembered() -> bool:
                return want <= set(await memories_of(store, users))

            await wait_for(remembered, timeout=150, alive=worker.alive)
            await asyncio.sleep(1)  # time for a duplicate to show
            found = await memories_of(store, users)
    except BaseException:
        worker.stop()
        raise
    missing = want - set(found)
    outcome = record(
        FaultOutcome(
            fault,
            cases,
            lost=len(missing),
            duplicated=sum(1 for n in found.values() if n > 1),
        )
    )
    if outcome.lost or outcome.duplicated or not worker.alive():
        worker.stop()
    assert outcome.lost == 0, f"valid messages never remembered, e.g. {sorted(missing)[:5]}"
    assert outcome.duplicated == 0
    assert worker.alive(), "the worker died"
    return worker


async def test_huge_records_are_dead_lettered_within_bounds_and_stop_nothing(
    tansu: Tansu, tmp_path: Path
) -> None:
    env = pipeline_env(
        bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite", partitions=PARTITIONS
    )
    settings = settings_from(env)
    await create_topics(settings.kafka)
    users = list(range(40))
    assert {partition_for(f"acme/user-{u:03d}".encode(), PARTITIONS) for u in users} == set(
        range(PARTITIONS)
    )
    before = [chat(u, 0) for u in users]
    after = [chat(u, 1) for u in users]
    poison: list[tuple[bytes | None, bytes]] = [
        (b"a/b", b"x" * 2**20),  # 1 MiB value
        (b"a/b", b"{" + b"y" * (10 * 2**20)),  # 10 MiB, not even JSON
        (b"k" * 900_000, chat(0, 99).model_dump_json().encode()),  # a 900 KB key
    ]
    await produce_raw(
        settings,
        [(m.key.encode(), m.model_dump_json().encode()) for m in before]
        + poison
        + [(m.key.encode(), m.model_dump_json().encode()) for m in after],
    )
    worker = await run_until_remembered(
        settings,
        env,
        tmp_path,
        {m.message_id for m in before + after},
        users,
        fault="poison records (1 MiB, 10 MiB, 900 KB key)",
        cases=len(before) + len(after) + len(poison),
    )
    try:
        letters = dead_letters(
            await read_topic(
                settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, expect=3, timeout=30
            )
        )
        assert len(letters) == 3
        by_size = {letter.value_bytes: letter for letter in letters}
        for key, value in poison:
            letter = by_size[len(value)]
            assert letter.truncated and letter.value_sha256 == hashlib.sha256(value).hexdigest()
            assert value.startswith(letter.value) and len(letter.value) <= 64 * 1024
            assert letter.key_bytes == len(key or b"")
            assert len(letter.model_dump_json()) < 200_000  # fits any broker's record limit
        assert by_size[2**20].reason is DlqReason.oversize
        assert by_size[10 * 2**20 + 1].reason is DlqReason.oversize
        assert by_size[len(poison[2][1])].reason is DlqReason.key_mismatch
        # Counted once sent, not before: the counters match what the DLQ holds.
        stats = worker.stats()
        assert stats["dlq_by_reason"] == {"oversize": 2, "key_mismatch": 1}
    finally:
        worker.stop()


async def test_a_window_heavy_with_metadata_is_split_and_nothing_stops(
    tansu: Tansu, tmp_path: Path
) -> None:
    """30 valid messages of ~51 KB each (32 metadata values of 1,000 characters) for one user
    once made a 1.5 MB job whose send crashed the agent; the window now closes by bytes."""
    env = pipeline_env(
        bootstrap=tansu.bootstrap,
        data_dir=tmp_path,
        backend="sqlite",
        partitions=PARTITIONS,
        extra={"MEMSTREAM_WINDOW__MAX_MESSAGES": "30"},
    )
    settings = settings_from(env)
    await create_topics(settings.kafka)
    metadata = {f"field{j}": "é" * 500 + "m" * 500 for j in range(32)}  # 1,500 bytes each
    heavy = [chat(0, i, metadata=metadata) for i in range(30)]
    sizes = [len(m.model_dump_json().encode()) for m in heavy]
    assert all(45_000 < n < settings.kafka.max_message_bytes for n in sizes)
    assert sum(sizes) > 1_400_000  # one window of them would be a 1.4 MB job
    others = [chat(u, i) for u in range(1, 41) for i in range(2)]
    await produce_raw(
        settings, [(m.key.encode(), m.model_dump_json().encode()) for m in heavy + others]
    )
    worker = await run_until_remembered(
        settings,
        env,
        tmp_path,
        {m.message_id for m in heavy + others},
        list(range(41)),
        fault="metadata-heavy window (1.46 MB of valid messages)",
        cases=len(heavy) + len(others),
    )
    try:
        stats = worker.stats()
        assert stats["windows_by_trigger"].get("max_bytes", 0) >= 2
        assert stats["dlq_by_reason"] == {}
        jobs = await read_topic(
            settings.kafka.bootstrap_servers, settings.kafka.jobs_topic, expect=1, timeout=10
        )
        assert max(len(j) for j in jobs) <= settings.window.max_bytes
        assert all(json.loads(j)["job_type"] for j in jobs)
    finally:
        worker.stop()
