"""End to end on real servers: broker (tansu) → worker process → store (SQLite / ES on noida)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.schemas import ChatMessage, ConsolidationJob, MemoryEvent, parse_job
from memstream.sinks import MemoryFilter, MemoryStore, open_store
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.faults import FaultOutcome, record
from tests.support.pipeline import (
    DataSet,
    Worker,
    dead_letters,
    make_dataset,
    pipeline_env,
    read_topic,
    settings_from,
    wait_for,
)
from tests.support.servers import Noida, Tansu

pytestmark = pytest.mark.servers


async def produce(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    async with MessageProducer(settings.kafka) as producer:
        await producer.send_many_raw(records)


async def check_outcome(
    settings: Settings,
    store: MemoryStore,
    embedder: Embedder,
    data: DataSet,
    worker: Worker,
    *,
    fault: str | None = None,
) -> None:
    """Every invalid record dead-lettered with its reason; every valid user message one memory."""
    expected = data.expected_memories
    owner = "acme"

    async def all_written() -> bool:
        await store.refresh()
        return await store.count(owner) >= len(expected)

    if not await wait_for(all_written, timeout=120, alive=worker.alive):
        pytest.fail(
            f"{await diagnose_missing(settings, store, expected)}; worker: {worker.stats()}"
        )
    await asyncio.sleep(2)  # time for anything extra (a duplicate) to show up
    await store.refresh()
    assert await store.count(owner) == len(expected)

    # Dead letters: each invalid input, with the reason that matches how it is broken.
    letters = dead_letters(
        await read_topic(
            settings.kafka.bootstrap_servers,
            settings.kafka.dlq_topic,
            expect=len(data.invalid),
            timeout=60,
        )
    )
    by_value = {letter.value: letter for letter in letters}
    for _key, value, kind in data.invalid:
        assert value in by_value, f"invalid record ({kind}) missing from the DLQ"
        letter = by_value[value]
        assert letter.reason.value == kind, (kind, letter.reason, letter.detail)
        assert letter.detail and letter.topic == settings.kafka.messages_topic
        assert letter.key_b64 is not None
    assert {lt.value for lt in letters} == {v for _, v, _ in data.invalid}

    # Each expected message is exactly one memory, with its content, time and provenance.
    users = sorted({m.user_id for m in expected.values()})
    seen: Counter[str] = Counter()
    for user in users:
        memories = await store.list_memories(owner, user, MemoryFilter(), limit=1000)
        for node in memories:
            assert len(node.source_message_ids) == 1
            mid = node.source_message_ids[0]
            seen[mid] += 1
            msg = expected[mid]
            assert node.content == msg.content
            assert node.valid_from == msg.sent_at and node.message_time == msg.sent_at
            assert node.memory_type == "observation" and node.vector is not None
    if fault is not None:
        record(
            FaultOutcome(
                fault,
                len(data.valid) + len(data.invalid),
                lost=len(set(expected) - set(seen)),
                duplicated=sum(1 for n in seen.values() if n > 1),
            )
        )
    assert set(seen) == set(expected) and set(seen.values()) == {1}

    # Retrievable through the query service, and the memory event log is complete.
    service = create_service(settings, store=store, embedder=embedder)
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for user in users[:10]:
            page = (await client.get(f"/v1/users/{owner}/{user}/memories?limit=100")).json()
            want = {mid for mid, m in expected.items() if m.user_id == user}
            assert page["total"] == len(want)
            assert {m["source_message_ids"][0] for m in page["memories"]} == want
            target = next(m for m in expected.values() if m.user_id == user)
            found = (
                await client.post(
                    "/v1/retrieve",
                    json={"owner_id": owner, "user_id": user, "query": target.content, "top_k": 3},
                )
            ).json()
            assert found["memories"][0]["source_message_ids"] == [target.message_id]
            assert target.content in found["prompt"].splitlines()[0]

    events = [
        MemoryEvent.model_validate_json(v)
        for v in await read_topic(
            settings.kafka.bootstrap_servers,
            settings.kafka.memories_topic,
            expect=len(expected),
            timeout=30,
        )
    ]
    assert {e.memory_id for e in events} == {
        n.memory_id for u in users for n in await store.list_memories(owner, u, limit=1000)
    }
    assert all(e.memory is not None and e.memory.vector for e in events)


async def diagnose_missing(
    settings: Settings, store: MemoryStore, expected: dict[str, ChatMessage]
) -> str:
    """Which expected memories are missing, and did the log (memory events) see them?"""
    have: set[str] = set()
    for user in {m.user_id for m in expected.values()}:
        for node in await store.list_memories("acme", user, limit=1000):
            have.update(node.source_message_ids)
    missing = sorted(set(expected) - have)
    events = [
        MemoryEvent.model_validate_json(v)
        for v in await read_topic(
            settings.kafka.bootstrap_servers, settings.kafka.memories_topic, expect=10**6, timeout=5
        )
    ]
    logged = {mid for e in events if e.memory for mid in e.memory.source_message_ids}
    jobs = [
        job
        for v in await read_topic(
            settings.kafka.bootstrap_servers, settings.kafka.jobs_topic, expect=10**6, timeout=5
        )
        if isinstance(job := parse_job(v), ConsolidationJob)
    ]
    in_jobs = {
        mid: [
            (j.job_id, j.trigger.value, len(j.messages))
            for j in jobs
            if any(m.message_id == mid for m in j.messages)
        ]
        for mid in missing
    }
    where = await _offsets_of(settings, set(missing))
    return (
        f"{len(missing)} of {len(expected)} memories missing: {missing[:10]}; "
        f"with a memory event on the log: {sorted(set(missing) & logged)[:10]}; "
        f"in jobs: {in_jobs}; jobs on the topic: {len(jobs)}; "
        f"message (partition, offset) vs group's committed offsets: {where}"
    )


async def _offsets_of(settings: Settings, message_ids: set[str]) -> dict[str, object]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    found: dict[str, object] = {}
    consumer = AIOKafkaConsumer(
        settings.kafka.messages_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=250)
            for tp, records in batch.items():
                for r in records:
                    try:
                        mid = json.loads(r.value or b"{}").get("message_id")
                    except (ValueError, AttributeError):
                        continue  # the invalid records of the data set
                    if mid in message_ids:
                        found[mid] = (tp.partition, r.offset)
    finally:
        await consumer.stop()
    group = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=settings.worker.app_id,
        enable_auto_commit=False,
    )
    await group.start()
    try:
        committed = {
            p: await group.committed(TopicPartition(settings.kafka.messages_topic, p))
            for p in range(settings.kafka.partitions)
        }
    finally:
        await group.stop()
    return {"messages": found, "committed": committed}


async def run_pipeline(
    tmp_path: Path, tansu: Tansu, embedder: Embedder, backend: str, es_url: str | None, kill: bool
) -> None:
    env = pipeline_env(
        bootstrap=tansu.bootstrap, data_dir=tmp_path / "data", backend=backend, es_url=es_url
    )
    settings = settings_from(env)
    await create_topics(settings.kafka)
    data = make_dataset()
    records = data.records()
    store = open_store(settings.store, dimensions=embedder.dimensions)
    async with store:
        worker = Worker(env, tmp_path / "worker-1.log")
        try:
            if not kill:
                await produce(settings, records)
            else:
                half = len(records) // 2
                await produce(settings, records[:half])

                async def some_written() -> bool:
                    await store.refresh()
                    return await store.count("acme") > 0

                assert await wait_for(some_written, timeout=90, alive=worker.alive), (
                    "worker never wrote anything"
                )
                worker.kill()  # SIGKILL mid-stream: no shutdown hook, no commit
                await produce(settings, records[half:])
                worker = Worker(env, tmp_path / "worker-2.log")
            fault = f"kill -9 of the worker mid-stream ({backend})" if kill else None
            await check_outcome(settings, store, embedder, data, worker, fault=fault)
            assert worker.alive(), "worker crashed; see its log"
        finally:
            code = worker.stop() if worker.alive() else None
        assert code in (None, 0), f"worker exit code {code}"


@pytest.mark.parametrize(
    "kill", [False, pytest.param(True, marks=pytest.mark.faults)], ids=["clean", "sigkill"]
)
async def test_pipeline_sqlite(
    tmp_path: Path, tansu: Tansu, embedder: Embedder, kill: bool
) -> None:
    await run_pipeline(tmp_path, tansu, embedder, "sqlite", None, kill)


@pytest.mark.parametrize(
    "kill", [False, pytest.param(True, marks=pytest.mark.faults)], ids=["clean", "sigkill"]
)
async def test_pipeline_elasticsearch(
    tmp_path: Path, tansu: Tansu, noida: Noida, embedder: Embedder, kill: bool
) -> None:
    await run_pipeline(tmp_path, tansu, embedder, "elasticsearch", noida.url, kill)


async def test_wrong_partition_and_unkeyed_records_are_rerouted(
    tmp_path: Path, tansu: Tansu, embedder: Embedder
) -> None:
    """A producer with another partitioner, or none, still gets one memory per message."""
    from aiokafka import AIOKafkaProducer

    from memstream.streams.partitioning import partition_for

    env = pipeline_env(
        bootstrap=tansu.bootstrap, data_dir=tmp_path / "data", backend="sqlite", partitions=4
    )
    settings = settings_from(env)
    await create_topics(settings.kafka)
    data = make_dataset(users=3, per_user=12, invalid=0)
    expected = data.expected_memories
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap)
    await producer.start()
    try:
        for i, m in enumerate(data.valid):
            key = m.key.encode()
            if i % 3 == 0:  # unkeyed: the client picks any partition
                await producer.send_and_wait(
                    settings.kafka.messages_topic, m.model_dump_json().encode(), partition=i % 4
                )
            else:  # keyed, but on a partition other than murmur2's
                wrong = (partition_for(key, 4) + 1 + i % 3) % 4
                await producer.send_and_wait(
                    settings.kafka.messages_topic,
                    m.model_dump_json().encode(),
                    key=key,
                    partition=wrong,
                )
    finally:
        await producer.stop()
    async with open_store(settings.store, dimensions=embedder.dimensions) as store:
        worker = Worker(env, tmp_path / "worker.log")
        try:

            async def done() -> bool:
                return await store.count("acme") >= len(expected)

            assert await wait_for(done, timeout=90, alive=worker.alive)
            await asyncio.sleep(2)
            assert await store.count("acme") == len(expected)
            stats = worker.stats()
            assert stats["messages_rerouted"] >= len(data.valid) * 2 // 3
            for user in {m.user_id for m in expected.values()}:
                nodes = await store.list_memories("acme", user, limit=100)
                assert sorted(n.source_message_ids[0] for n in nodes) == sorted(
                    mid for mid, m in expected.items() if m.user_id == user
                )
        finally:
            assert worker.stop() == 0


async def test_open_window_messages_stay_uncommitted_until_emitted(
    tmp_path: Path, tansu: Tansu, embedder: Embedder
) -> None:
    """The log, not the window table, is what a restart relies on.

    While a window is open its messages' offsets are not committed, so a worker that dies
    (SIGKILL) re-reads them, whatever its changelog recovery restores.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from memstream.streams.partitioning import partition_for

    env = pipeline_env(
        bootstrap=tansu.bootstrap,
        data_dir=tmp_path / "data",
        backend="sqlite",
        partitions=2,
        extra={
            "MEMSTREAM_WINDOW__IDLE_SECONDS": "600",
            "MEMSTREAM_WINDOW__MAX_MESSAGES": "100",
        },
    )
    settings = settings_from(env)
    await create_topics(settings.kafka)
    data = make_dataset(users=1, per_user=8, invalid=0)
    expected = data.expected_memories
    await produce(settings, data.records())
    worker = Worker(env, tmp_path / "worker-1.log")

    async def windowed() -> bool:
        return int(worker.stats().get("messages_windowed", 0)) >= len(data.valid)

    assert await wait_for(windowed, timeout=60, alive=worker.alive)
    await asyncio.sleep(4)  # past Faust's commit interval (2.8 s)
    tp = TopicPartition(settings.kafka.messages_topic, partition_for(b"acme/user-000", 2))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=tansu.bootstrap,
        group_id=settings.worker.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        committed = await consumer.committed(tp)
    finally:
        await consumer.stop()
    assert committed is None or committed == 0, f"committed {committed} past an open window"

    worker.kill()
    env2 = {**env, "MEMSTREAM_WINDOW__IDLE_SECONDS": "1"}
    worker = Worker(env2, tmp_path / "worker-2.log")
    async with open_store(settings.store, dimensions=embedder.dimensions) as store:
        try:

            async def done() -> bool:
                # The first worker's early memories are there already (version 1); the window
                # the second one re-read and closed writes them again as version 2.
                nodes = await store.list_memories("acme", "user-000", limit=100)
                return len(nodes) >= len(expected) and all(n.version == 2 for n in nodes)

            assert await wait_for(done, timeout=90, alive=worker.alive)
            nodes = await store.list_memories("acme", "user-000", limit=100)
            assert sorted(n.source_message_ids[0] for n in nodes) == sorted(expected)
        finally:
            assert worker.stop() == 0
