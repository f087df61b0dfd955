"""Faults of the machinery around memstream, through the real servers: the broker paused
mid-stream, the query service killed with SIGKILL under load. Each records its outcome in
the fault suite's summary (tests/support/faults.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from memstream.config import settings_env
from memstream.embedded import free_port, spawn, start_tansu, stop, wait_port
from memstream.evaluation.bench import load_store
from memstream.schemas import ChatMessage, memory_id
from memstream.sinks import MemoryFilter, open_store
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.faults import FaultOutcome, record
from tests.support.pipeline import Worker, pipeline_env, settings_from, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.faults]

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def chat(user: int, i: int) -> ChatMessage:
    return ChatMessage(
        message_id=f"u{user}-m{i}",
        owner_id="acme",
        user_id=f"user-{user:02d}",
        role="user",
        content=f"User {user}, note {i}: I visited museum number {user * 100 + i}.",
        sent_at=T0 + timedelta(minutes=user, seconds=i),
    )


async def test_a_paused_broker_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port = free_port()
    broker = start_tansu(port, tmp_path / "tansu.log")
    wait_port("127.0.0.1", port, timeout=30, proc=broker)
    env = pipeline_env(bootstrap=f"127.0.0.1:{port}", data_dir=tmp_path, backend="sqlite")
    settings = settings_from(env)
    await create_topics(settings.kafka)
    worker = Worker(env, tmp_path / "worker.log")
    users = range(20)
    first = [chat(u, i) for u in users for i in range(5)]
    second = [chat(u, i) for u in users for i in range(5, 10)]
    try:
        async with MessageProducer(settings.kafka) as producer:
            await producer.send_many(first)
            await asyncio.sleep(2)  # the worker is consuming
            broker.send_signal(signal.SIGSTOP)
            await asyncio.sleep(6)  # the worker's fetches, commits and sends all stall
            broker.send_signal(signal.SIGCONT)
            await producer.send_many(second)
        wanted = {m.message_id for m in first + second}
        async with open_store(settings.store, dimensions=384) as store:

            async def stored() -> Counter[str]:
                found: Counter[str] = Counter()
                for u in users:
                    for n in await store.list_memories("acme", f"user-{u:02d}", MemoryFilter()):
                        found.update(n.source_message_ids)
                return found

            async def remembered() -> bool:
                return wanted <= set(await stored())

            await wait_for(remembered, 150, alive=worker.alive)
            await asyncio.sleep(2)
            found = await stored()
        outcome = record(
            FaultOutcome(
                "broker paused 6 s mid-stream",
                len(wanted),
                lost=len(wanted - set(found)),
                duplicated=sum(1 for n in found.values() if n > 1),
            )
        )
        assert outcome.lost == 0 and outcome.duplicated == 0
        assert worker.alive()
    finally:
        worker.stop()
        broker.send_signal(signal.SIGCONT)
        stop(broker)


async def test_the_query_service_killed_under_load_answers_no_5xx_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    env = pipeline_env(bootstrap="127.0.0.1:1", data_dir=tmp_path, backend="sqlite")
    settings = settings_from(env)
    users = 30
    await load_store(settings, users, 20)
    port = free_port()
    child_env = {**os.environ, **settings_env(settings), "MEMSTREAM_API__PORT": str(port)}
    cmd = [sys.executable, "-m", "memstream", "serve", "--port", str(port)]

    def start(n: int) -> subprocess.Popen[bytes]:
        proc = spawn(cmd, child_env, tmp_path / f"service-{n}.log")
        wait_port("127.0.0.1", port, timeout=60, proc=proc)
        return proc

    # Every memory id of each user (the ids the bench wrote): an answer holds only the asker's.
    owned = {
        f"u{u}": {memory_id("bench", f"u{u}", [f"m{i}"], 0) for i in range(20)}
        for u in range(users)
    }
    proc = start(1)
    answered = Counter[str]()
    leaked = 0
    deadline = time.monotonic() + 16
    killed_at = time.monotonic() + 5

    async def client(c: int) -> None:
        nonlocal leaked
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                user = f"u{(c * 7 + i) % users}"
                body = {"owner_id": "bench", "user_id": user, "query": "what did I start?"}
                try:
                    r = await http.post("/v1/retrieve", json=body)
                except httpx.TransportError:
                    answered["unreachable"] += 1  # the service is down: no answer, no 5xx
                    await asyncio.sleep(0.1)
                    continue
                answered[str(r.status_code)] += 1
                if r.status_code == 200:
                    mine = owned[user]
                    leaked += sum(1 for m in r.json()["memories"] if m["memory_id"] not in mine)

    async def killer() -> None:
        nonlocal proc
        await asyncio.sleep(max(0.0, killed_at - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = await asyncio.to_thread(start, 2)

    try:
        await asyncio.gather(killer(), *(client(c) for c in range(6)))
    finally:
        stop(proc)
    server_errors = sum(n for code, n in answered.items() if code.startswith("5"))
    outcome = record(
        FaultOutcome(
            "query service killed (SIGKILL) under load, then restarted",
            sum(answered.values()),
            leaked=leaked,
            server_errors=server_errors,
        )
    )
    assert outcome.server_errors == 0 and outcome.leaked == 0, answered
    assert answered["200"] > 50 and answered["unreachable"] > 0, answered
