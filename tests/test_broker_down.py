"""Writes through the query service while the broker is unreachable: a fast 503 with the
reason, never a hang; reads keep answering."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.sinks.sqlite import SQLiteStore
from memstream.streams.topics import create_topics
from tests.support.pipeline import pipeline_env, settings_from
from tests.support.servers import Tansu

pytestmark = [pytest.mark.servers, pytest.mark.faults]

TIMEOUT = 2.0


async def test_writes_answer_503_within_the_timeout_while_the_broker_is_down(
    tmp_path: Path, embedder: Embedder
) -> None:
    broker = Tansu(tmp_path)  # our own: it is stopped half-way
    env = pipeline_env(
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        backend="sqlite",
        extra={"MEMSTREAM_API__PRODUCE_TIMEOUT_SECONDS": str(TIMEOUT)},
    )
    settings: Settings = settings_from(env)
    try:
        await create_topics(settings.kafka)
        async with SQLiteStore(tmp_path / "s.db") as store:
            service = create_service(settings, store=store, embedder=embedder)
            transport = httpx.ASGITransport(app=service)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://svc", timeout=60
            ) as client:
                users = "/v1/users/demo/alice"
                ok = await client.post(f"{users}/memories", json={"content": "I like tea."})
                assert ok.status_code == 202  # the broker is up: accepted
                broker.close()
                for method, path, body in [
                    ("POST", f"{users}/memories", {"content": "I like coffee."}),
                    ("POST", f"{users}/forget", None),
                    ("DELETE", f"{users}/memories", None),
                    ("DELETE", f"{users}/memories/abc", None),
                ]:
                    started = time.monotonic()
                    answer = await client.request(method, path, json=body)
                    took = time.monotonic() - started
                    assert answer.status_code == 503, (path, answer.text)
                    assert "message log is unavailable" in answer.json()["error"]
                    assert took < TIMEOUT + 3, (path, took)
                # Reads do not need the broker.
                listed = await client.get(f"{users}/memories")
                assert listed.status_code == 200
    finally:
        broker.close()
