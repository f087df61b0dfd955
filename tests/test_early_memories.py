"""LLM-free mode: a user's message is searchable within seconds, long before its window
closes (two minutes of silence by default); the close completes the same memory with the
reply after it. One memory per message, and a replay of the log ends at the complete one."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memstream.embedded import WorkerProcess
from memstream.schemas import ChatMessage, MemoryEvent
from memstream.sinks.sqlite import SQLiteStore
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.pipeline import pipeline_env, read_topic, settings_from
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers


def turn(mid: str, role: str, content: str, at: datetime) -> ChatMessage:
    return ChatMessage(
        message_id=mid,
        owner_id="acme",
        user_id="alice",
        role=role,
        content=content,
        sent_at=at,
        speaker="Alice" if role == "user" else None,
    )


async def test_a_message_is_searchable_at_once_and_completed_when_its_window_closes(
    tansu: Tansu, tmp_path: Path
) -> None:
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    env["MEMSTREAM_WINDOW__IDLE_SECONDS"] = "120"  # the default: nothing closes on its own
    settings = settings_from(env)
    await create_topics(settings.kafka)
    now = datetime.now(UTC)
    question = turn("q", "assistant", "How was the interview?", now)
    answer = turn("a", "user", "I got the job at Meituan!", now + timedelta(seconds=1))
    reply = turn("r", "assistant", "Congratulations on the new role!", now + timedelta(seconds=2))
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        # Live traffic: the worker is up and keeping up (a backlog gets no early jobs).
        deadline = time.monotonic() + 90
        while not worker.stats().get("assigned_partitions"):
            assert worker.alive() and time.monotonic() < deadline, "worker did not join"
            time.sleep(0.2)
        async with MessageProducer(settings.kafka) as producer:
            await producer.send_many([question, answer])
            acked = time.monotonic()
        async with SQLiteStore(settings.store.sqlite_path) as store:
            found = []
            while not found and time.monotonic() - acked < 60:
                assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
                found = await store.list_memories("acme", "alice", limit=10)
                time.sleep(0.1)
            took = time.monotonic() - acked
            (early,) = found
            assert early.content == "I got the job at Meituan!" and early.version == 1
            assert early.context == "How was the interview?"
            assert took < 10, took  # well before the window's two minutes

            async with MessageProducer(settings.kafka) as producer:
                await producer.send_many([reply])
            deadline = time.monotonic() + 30
            while worker.stats().get("messages_windowed", 0) < 3:  # the reply is in the window
                assert time.monotonic() < deadline, worker.stats()
                time.sleep(0.1)
            assert worker.stop(timeout=60) == 0  # the drain closes the window
            (final,) = await store.list_memories("acme", "alice", limit=10)
        assert final.memory_id == early.memory_id and final.version == 2
        assert final.context == "How was the interview?\nCongratulations on the new role!"
        events = [
            MemoryEvent.model_validate_json(v)
            for v in await read_topic(
                settings.kafka.bootstrap_servers,
                settings.kafka.memories_topic,
                expect=2,
                timeout=20,
            )
        ]
        assert [e.version for e in events] == [1, 2], "a replay ends at the complete memory"
    finally:
        if worker.alive():
            worker.kill()
