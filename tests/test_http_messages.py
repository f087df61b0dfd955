"""``POST /v1/messages``: the same judge as the worker's ingest, the same log."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.schemas.dlq import DlqReason
from memstream.sinks.sqlite import SQLiteStore
from memstream.streams.codec import Rejected, decode_message
from memstream.streams.topics import create_topics
from tests.support.pipeline import pipeline_env, settings_from
from tests.support.servers import Tansu

GOOD: dict[str, Any] = {
    "message_id": "m-1",
    "owner_id": "acme",
    "user_id": "alice",
    "role": "user",
    "speaker": "Alice",
    "content": "I just joined Meituan.",
    "sent_at": "2024-07-10T09:30:00+08:00",
}


def bad(**fields: Any) -> dict[str, Any]:
    out = {**GOOD, **fields}
    return {k: v for k, v in out.items() if v is not ...}


#: One table for both doors: a message refused over HTTP has the reason its dead letter
#: would have had on the Kafka path.
TABLE: list[tuple[str, Any, DlqReason]] = [
    ("not an object", [1, 2], DlqReason.not_an_object),
    ("a string", "text", DlqReason.not_an_object),
    ("missing content", bad(content=...), DlqReason.missing_field),
    ("content a number", bad(content=42), DlqReason.wrong_type),
    ("role a list", bad(role=["user"]), DlqReason.wrong_type),
    ("unknown role", bad(role="robot"), DlqReason.invalid_value),
    ("lone surrogate", bad(content="a lone surrogate \ud800"), DlqReason.invalid_value),
    ("bad user id", bad(user_id="has space"), DlqReason.invalid_value),
    ("no zone", bad(sent_at="2024-07-10T09:30:00"), DlqReason.bad_timestamp),
    ("epoch", bad(sent_at=1720575000), DlqReason.bad_timestamp),
    ("far future", bad(sent_at="2099-07-10T09:30:00Z"), DlqReason.timestamp_in_future),
    ("content too long", bad(content="x" * 16_001), DlqReason.oversize),
    ("context too long", bad(context="x" * 2_001), DlqReason.oversize),
    ("unknown field", bad(extra_field=1), DlqReason.unknown_field),
    ("schema version 9", bad(schema_version=9), DlqReason.unsupported_schema_version),
    ("schema version true", bad(schema_version=True), DlqReason.wrong_type),
]
IDS = [name for name, _, _ in TABLE]


@pytest.mark.parametrize(("name", "item", "reason"), TABLE, ids=IDS)
def test_the_kafka_path_dead_letters_with_the_reason(
    name: str, item: Any, reason: DlqReason
) -> None:
    from datetime import UTC, datetime, timedelta

    decoded = decode_message(
        None,
        json.dumps(item).encode(),
        max_bytes=64 * 1024,
        now=datetime.now(UTC),
        max_future_skew=timedelta(days=1),
    )
    assert isinstance(decoded, Rejected) and decoded.reason is reason, decoded


@pytest.fixture
async def offline(tmp_path: Path, embedder: Embedder) -> Any:
    """A service whose broker does not exist: judging needs none, producing gets 503."""
    settings = Settings.load(
        data_dir=tmp_path,
        kafka={"bootstrap_servers": "127.0.0.1:1"},
        api={"produce_timeout_seconds": 1.0},
    )
    async with SQLiteStore(tmp_path / "s.db") as store:
        yield create_service(settings, store=store, embedder=embedder)


@pytest.mark.parametrize(("name", "item", "reason"), TABLE, ids=IDS)
async def test_http_rejects_with_the_same_reason(
    offline: Any, name: str, item: Any, reason: DlqReason
) -> None:
    transport = httpx.ASGITransport(app=offline)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        # ASCII JSON, as a producer's bytes: a lone surrogate travels as its escape.
        r = await client.post(
            "/v1/messages",
            content=json.dumps({"messages": [item]}).encode(),
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 0 and body["rejected"] == 1
    (verdict,) = body["results"]
    assert verdict["status"] == "rejected" and verdict["reason"] == reason.value
    assert verdict["detail"]


async def test_request_shape_is_bounded(offline: Any) -> None:
    transport = httpx.ASGITransport(app=offline)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        empty = await client.post("/v1/messages", json={"messages": []})
        many = await client.post("/v1/messages", json={"messages": [GOOD] * 501})
        other = await client.post("/v1/messages", json={"msgs": [GOOD]})
    assert empty.status_code == many.status_code == other.status_code == 422


@pytest.mark.servers
@pytest.mark.faults
async def test_valid_messages_reach_the_log_and_a_paused_broker_answers_503(
    tmp_path: Path, embedder: Embedder
) -> None:
    broker = Tansu(tmp_path)
    env = pipeline_env(
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        backend="sqlite",
        extra={"MEMSTREAM_API__PRODUCE_TIMEOUT_SECONDS": "2"},
    )
    settings = settings_from(env)
    try:
        await create_topics(settings.kafka)
        async with SQLiteStore(tmp_path / "s.db") as store:
            service = create_service(settings, store=store, embedder=embedder)
            transport = httpx.ASGITransport(app=service)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://svc", timeout=60
            ) as client:
                second = bad(message_id="m-2", user_id="bob", content="我养了一只猫")
                mixed = [GOOD, bad(content=42), GOOD, second]
                r = await client.post("/v1/messages", json={"messages": mixed})
                assert r.status_code == 202, r.text
                statuses = [v["status"] for v in r.json()["results"]]
                assert statuses == ["accepted", "rejected", "duplicate", "accepted"]
                # A paused broker: a 503 within the timeout, never a hang.
                os.kill(broker.proc.pid, signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    late = await client.post(
                        "/v1/messages", json={"messages": [bad(message_id="m-3")]}
                    )
                    took = time.monotonic() - started
                finally:
                    os.kill(broker.proc.pid, signal.SIGCONT)
                assert late.status_code == 503 and "unavailable" in late.json()["error"]
                assert took < 2 + 3, took
        # What was accepted before is on the log, keyed by user, exactly once.
        consumer = AIOKafkaConsumer(
            settings.kafka.messages_topic,
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            records: list[Any] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(records) < 2:
                batch = await consumer.getmany(timeout_ms=500)
                records += [r for rs in batch.values() for r in rs]
        finally:
            await consumer.stop()
        got = {(r.key.decode(), json.loads(r.value)["message_id"]) for r in records}
        assert {("acme/alice", "m-1"), ("acme/bob", "m-2")} <= got
        assert sum(1 for k, m in got if m == "m-1") == 1
    finally:
        broker.close()
