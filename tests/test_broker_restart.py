"""The embedded broker keeps its log in memory: restarted, every topic is gone. Nothing may
then create a topic by using it (with the broker's default partition count), the worker must
notice and stop with a one-line reason, and a restarted worker recreates the topics as
specified and goes on: no memory is written without its event on the log."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from memstream.config import Settings
from memstream.embedded import free_port, start_tansu, stop, wait_port
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.schemas import ChatMessage, MemoryEvent
from memstream.sinks import MemoryFilter, open_store
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.faults import FaultOutcome, record
from tests.support.pipeline import Worker, pipeline_env, read_topic, settings_from, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.faults]

PARTITIONS = 4
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def messages(round_no: int, users: int = 12) -> list[ChatMessage]:
    return [
        ChatMessage(
            message_id=f"r{round_no}-u{u}",
            owner_id="acme",
            user_id=f"user-{u:02d}",
            role="user",
            content=f"Round {round_no}: user {u} started learning instrument number {u}.",
            sent_at=T0 + timedelta(days=round_no, minutes=u),
        )
        for u in range(users)
    ]


async def topic_partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if not t.startswith("__")]
        described = await admin.describe_topics(names) if names else []
        return {t["topic"]: len(t.get("partitions") or []) for t in described}
    finally:
        await admin.close()


async def remembered(settings: Settings, ids: set[str]) -> bool:
    async with open_store(settings.store, dimensions=384) as store:
        found: set[str] = set()
        for u in range(12):
            for node in await store.list_memories("acme", f"user-{u:02d}", MemoryFilter()):
                found.update(node.source_message_ids)
    return ids <= found


async def test_a_broker_restart_stops_the_worker_and_creates_no_topic_by_accident(
    tmp_path: Path, embedder: Embedder
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = start_tansu(port, tmp_path / "tansu-1.log")
    wait_port("127.0.0.1", port, timeout=30, proc=broker)
    env = pipeline_env(
        bootstrap=bootstrap,
        data_dir=tmp_path,
        backend="sqlite",
        partitions=PARTITIONS,
        extra={"MEMSTREAM_WORKER__TOPIC_CHECK_SECONDS": "1"},
    )
    settings = settings_from(env)
    await create_topics(settings.kafka)
    worker = Worker(env, tmp_path / "worker-1.log")
    second: Worker | None = None
    try:
        async with MessageProducer(settings.kafka) as producer:
            await producer.send_many(messages(1))
        first = {m.message_id for m in messages(1)}
        assert await wait_for(lambda: remembered(settings, first), 90, alive=worker.alive)

        stop(broker)  # all topics, offsets and groups are gone with it
        broker = start_tansu(port, tmp_path / "tansu-2.log")
        wait_port("127.0.0.1", port, timeout=30, proc=broker)

        # The query service's writes find no topic: a 503 that says so, and no topic made.
        async with open_store(settings.store, dimensions=384, serving=True) as store:
            service = create_service(settings, store=store, embedder=embedder)
            transport = httpx.ASGITransport(app=service)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                answer = await client.post(
                    "/v1/users/acme/user-01/memories", json={"content": "I like tea."}
                )
        assert answer.status_code == 503 and "does not exist" in answer.json()["error"]

        # The worker notices within seconds, says why in one line, and exits with status 1.
        await asyncio.to_thread(worker.proc.wait, 60)
        assert worker.proc.returncode == 1
        log = (tmp_path / "worker-1.log").read_text(errors="replace")
        assert "topics missing" in log and "the worker stops (exit status 1)" in log
        assert await topic_partitions(bootstrap) == {}  # nothing was auto-created

        # Restarted, the worker makes the topics as specified and carries on.
        second = Worker(env, tmp_path / "worker-2.log")
        ours = {
            settings.kafka.messages_topic,
            settings.kafka.jobs_topic,
            settings.kafka.memories_topic,
            settings.kafka.dlq_topic,
        }

        async def topics_made() -> bool:
            made = await topic_partitions(bootstrap)
            return ours <= set(made)

        assert await wait_for(topics_made, 60, alive=second.alive)
        made = await topic_partitions(bootstrap)
        assert {made[t] for t in ours} == {PARTITIONS}
        async with MessageProducer(settings.kafka) as producer:
            await producer.send_many(messages(2))
        later = {m.message_id for m in messages(2)}
        assert await wait_for(lambda: remembered(settings, later), 90, alive=second.alive)
        events = [
            MemoryEvent.model_validate_json(v)
            for v in await read_topic(
                bootstrap, settings.kafka.memories_topic, expect=len(later), timeout=30
            )
        ]
        published = Counter(
            mid for e in events if e.memory is not None for mid in e.memory.source_message_ids
        )
        async with open_store(settings.store, dimensions=384) as store:
            stored: Counter[str] = Counter()
            for u in range(12):
                for node in await store.list_memories("acme", f"user-{u:02d}", MemoryFilter()):
                    stored.update(node.source_message_ids)
        wanted = first | later
        outcome = record(
            FaultOutcome(
                "broker restart (in-memory log lost)",
                len(wanted),
                # A memory missing, or written without its event on the log.
                lost=len(wanted - set(stored)) + len(later - set(published)),
                duplicated=sum(1 for n in stored.values() if n > 1),
            )
        )
        assert outcome.lost == 0 and outcome.duplicated == 0
    finally:
        worker.stop()
        if second is not None:
            second.stop()
        stop(broker)
