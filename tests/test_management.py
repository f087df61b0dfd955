"""Memory management through the log, end to end: the query service puts changes on the log,
the worker applies them in order with the user's other jobs. Forget erases a user — memories,
open window — and leaves a tombstone on the memory log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.schemas import ChatMessage, MemoryEvent, MemoryEventType, MemoryType
from memstream.sinks import open_store
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.pipeline import Worker, pipeline_env, read_topic, settings_from, wait_for
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers


def msg(user: str, n: int, text: str, at: datetime) -> ChatMessage:
    return ChatMessage(
        message_id=f"{user}-{n}",
        owner_id="acme",
        user_id=user,
        role="user",
        content=text,
        sent_at=at,
    )


async def test_add_delete_export_and_forget(
    tansu: Tansu, tmp_path: Path, embedder: Embedder
) -> None:
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    settings = settings_from(env)
    await create_topics(settings.kafka)
    t0 = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
    first = [
        msg("alice", 0, "I live in Lyon with my two cats.", t0),
        msg("alice", 1, "I teach mathematics at a high school.", t0 + timedelta(seconds=5)),
        msg("bob", 0, "I collect vintage cameras.", t0),
    ]
    worker = Worker(env, tmp_path / "worker.log")
    store = open_store(settings.store, dimensions=384)
    await store.open()
    service = create_service(settings, store=store, embedder=embedder)
    transport = httpx.ASGITransport(app=service)
    client = httpx.AsyncClient(transport=transport, base_url="http://svc")
    users = "/v1/users/acme"
    try:
        async with MessageProducer(settings.kafka) as producer:
            await producer.send_many(first)

        async def count(user: str, n: int) -> bool:
            return await store.count("acme", user) == n

        assert await wait_for(lambda: count("alice", 2), 60, alive=worker.alive)

        # Add by hand: an obs_customized memory, written by the worker from the log.
        r = await client.post(
            f"{users}/alice/memories", json={"content": "Alice is vegetarian.", "request_id": "r-1"}
        )
        assert r.status_code == 202, r.text
        added = r.json()["memory_id"]
        assert await wait_for(lambda: count("alice", 3), 30, alive=worker.alive)
        got = (await client.get(f"{users}/alice/memories/{added}")).json()
        assert (
            got["memory_type"] == MemoryType.obs_customized
            and got["content"] == "Alice is vegetarian."
        )
        found = (
            await client.post(
                "/v1/retrieve",
                json={
                    "owner_id": "acme",
                    "user_id": "alice",
                    "query": "what does Alice eat?",
                    "top_k": 1,
                },
            )
        ).json()
        assert found["memories"][0]["memory_id"] == added
        # The same request id again adds nothing.
        again = await client.post(
            f"{users}/alice/memories", json={"content": "Alice is vegetarian.", "request_id": "r-1"}
        )
        assert again.json()["memory_id"] == added

        # Delete one.
        page = (await client.get(f"{users}/alice/memories")).json()
        lyon = next(m["memory_id"] for m in page["memories"] if "Lyon" in m["content"])
        assert (await client.delete(f"{users}/alice/memories/{lyon}")).status_code == 202
        assert await wait_for(lambda: count("alice", 2), 30, alive=worker.alive)
        assert (await client.get(f"{users}/alice/memories/{lyon}")).status_code == 404

        # Export: everything of the user, as JSON.
        export = (await client.get(f"{users}/alice/export")).json()
        assert {m["memory_id"] for m in export["memories"]} >= {added}
        assert len(export["memories"]) == 2

        # A message still in Alice's open window, then forget: the window is erased too.
        async with MessageProducer(settings.kafka) as producer:
            await producer.send(
                msg("alice", 2, "My new phone number ends in 4711.", t0 + timedelta(days=1))
            )
        r = await client.post(f"{users}/alice/forget")
        assert r.status_code == 202
        assert await wait_for(lambda: count("alice", 0), 30, alive=worker.alive)
        await asyncio.sleep(settings.window.idle_seconds + 3)  # the erased window never closes
        assert await store.count("acme", "alice") == 0
        for path in ("memories", "export"):
            body = (await client.get(f"{users}/alice/{path}")).json()
            assert body["memories"] == []
        gone = (
            await client.post(
                "/v1/retrieve",
                json={
                    "owner_id": "acme",
                    "user_id": "alice",
                    "query": "phone number vegetarian Lyon",
                },
            )
        ).json()
        assert gone["memories"] == []
        assert (await client.get(f"{users}/alice/memories/{added}")).status_code == 404
        # The tombstone is on the memory log, after the user's earlier events.
        events = [
            MemoryEvent.model_validate_json(v)
            for v in await read_topic(
                settings.kafka.bootstrap_servers,
                settings.kafka.memories_topic,
                expect=10**6,
                timeout=3,
            )
        ]
        alice = [e for e in events if e.user_id == "alice"]
        assert alice[-1].event_type is MemoryEventType.forget
        assert any(e.event_type is MemoryEventType.delete and e.memory_id == lyon for e in alice)
        # Bob is untouched; Alice can start over (only the past was erased).
        assert await store.count("acme", "bob") == 1
        async with MessageProducer(settings.kafka) as producer:
            await producer.send(
                msg("alice", 3, "I started learning the cello.", t0 + timedelta(days=2))
            )
        assert await wait_for(lambda: count("alice", 1), 30, alive=worker.alive)
        assert worker.stats()["forgets"] == 1
    finally:
        await client.aclose()
        worker.stop()
        await store.close()
