"""Helpers for end-to-end tests: a real worker process, a data set with invalid records."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from memstream.config import Settings
from memstream.embedded import WorkerProcess
from memstream.schemas import ChatMessage, DeadLetter


def pipeline_env(
    *,
    bootstrap: str,
    data_dir: Path,
    backend: str,
    es_url: str | None = None,
    partitions: int = 4,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Settings for an isolated pipeline on a shared broker: own topics, group and store."""
    tag = uuid.uuid4().hex[:8]
    env = {
        "MEMSTREAM_DATA_DIR": str(data_dir),
        "MEMSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "MEMSTREAM_KAFKA__PARTITIONS": str(partitions),
        "MEMSTREAM_KAFKA__MESSAGES_TOPIC": f"t{tag}.messages",
        "MEMSTREAM_KAFKA__JOBS_TOPIC": f"t{tag}.jobs",
        "MEMSTREAM_KAFKA__MEMORIES_TOPIC": f"t{tag}.memories",
        "MEMSTREAM_KAFKA__DLQ_TOPIC": f"t{tag}.dlq",
        "MEMSTREAM_WORKER__APP_ID": f"memstream-{tag}",
        "MEMSTREAM_WINDOW__MAX_MESSAGES": "8",
        "MEMSTREAM_WINDOW__IDLE_SECONDS": "3",
        "MEMSTREAM_WINDOW__TICK_SECONDS": "0.5",
        "MEMSTREAM_STORE__BACKEND": backend,
        "MEMSTREAM_STORE__INDEX_PREFIX": f"mem-{tag}",
    }
    if es_url:
        env["MEMSTREAM_STORE__ELASTICSEARCH_URL"] = es_url
    env.update(extra or {})
    return env


def settings_from(env: dict[str, str]) -> Settings:
    """Settings as a process started with ``env`` would load them."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        return Settings.load()


#: The product's own worker-process helper.
Worker = WorkerProcess


@dataclass
class DataSet:
    valid: list[ChatMessage] = field(default_factory=list)
    invalid: list[tuple[bytes, bytes, str]] = field(default_factory=list)  # key, value, kind

    @property
    def expected_memories(self) -> dict[str, ChatMessage]:
        """message_id -> message, for messages that must become exactly one memory."""
        return {
            m.message_id: m
            for m in self.valid
            if m.role == "user" and not m.content.startswith(("ok", "thanks"))
        }

    def records(self, seed: int = 7) -> list[tuple[bytes, bytes]]:
        """Valid and invalid records interleaved, each user's valid ones in order."""
        rng = random.Random(seed)
        recs = [(m.key.encode(), m.model_dump_json().encode()) for m in self.valid]
        for key, value, _ in self.invalid:
            recs.insert(rng.randrange(len(recs) + 1), (key, value))
        return recs


TOPICS = ["hiking", "chess", "sushi", "violin", "cycling", "pottery", "astronomy", "salsa"]


def make_dataset(users: int = 50, per_user: int = 18, invalid: int = 100) -> DataSet:
    data = DataSet()
    base = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    for u in range(users):
        for i in range(per_user):
            if i % 6 == 5:
                role, content = "assistant", f"That sounds lovely, tell me more ({u}-{i})."
            elif i % 9 == 4:
                role, content = "user", ["ok", "thanks!"][i % 2]
            else:
                topic = TOPICS[(u + i) % len(TOPICS)]
                role = "user"
                content = (
                    f"User {u} note {i}: I spent the weekend on {topic} with friend #{u * 31 + i}."
                )
            data.valid.append(
                ChatMessage(
                    message_id=f"u{u}-m{i}",
                    owner_id="acme",
                    user_id=f"user-{u:03d}",
                    role=role,
                    content=content,
                    sent_at=base + timedelta(days=u, seconds=i),
                )
            )
    good = json.loads(data.valid[0].model_dump_json())
    kinds = [
        ("malformed_json", lambda n: b'{"message_id": "bad-' + str(n).encode() + b'", '),
        (
            "missing_field",
            lambda n: _json({**good, "message_id": f"bad-{n}", "content": None}, drop="content"),
        ),
        ("wrong_type", lambda n: _json({**good, "message_id": f"bad-{n}", "content": n})),
        (
            "bad_timestamp",
            lambda n: _json({**good, "message_id": f"bad-{n}", "sent_at": "yesterday"}),
        ),
        (
            "bad_timestamp",
            lambda n: _json({**good, "message_id": f"bad-{n}", "sent_at": "2024-05-01T10:00:00"}),
        ),
        (
            "bad_timestamp",
            lambda n: _json({**good, "message_id": f"bad-{n}", "sent_at": "2999-01-01T00:00:00Z"}),
        ),
        ("oversize", lambda n: _json({**good, "message_id": f"bad-{n}", "content": "x" * 20_000})),
        (
            "invalid_utf8",
            lambda n: b'{"message_id": "bad-' + str(n).encode() + b'", "content": "\xff\xfe"}',
        ),
        ("wrong_type", lambda n: _json({**good, "message_id": f"bad-{n}", "role": ["user"]})),
        ("invalid_value", lambda n: _json({**good, "message_id": f"bad {n}"})),
    ]
    for n in range(invalid):
        kind, build = kinds[n % len(kinds)]
        user = f"user-{n % users:03d}"
        data.invalid.append((f"acme/{user}".encode(), build(n), kind))
    return data


def _json(obj: dict[str, object], drop: str | None = None) -> bytes:
    if drop:
        obj = {k: v for k, v in obj.items() if k != drop}
    return json.dumps(obj).encode()


async def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float) -> list[bytes]:
    """Read a topic from the start until ``expect`` records arrived (or time is up)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batch.values():
                values.extend(r.value for r in records)
        # A little longer, to see duplicates or extras that should not be there.
        for _ in range(4):
            batch = await consumer.getmany(timeout_ms=250)
            for records in batch.values():
                values.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return values


def dead_letters(values: list[bytes]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v) for v in values]


async def wait_for(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float,
    interval: float = 0.5,
    *,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll until true; raise at once if the process we wait on (``alive``) has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        if alive is not None and not alive():
            raise RuntimeError("the worker process died; see its log")
        await asyncio.sleep(interval)
    return bool(await predicate())
