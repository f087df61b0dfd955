"""LLM consolidation and reflection through the real pipeline: tansu → worker process (OpenAI
backend) → store, with the scripted OpenAI-compatible server standing in for the model."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from memstream.schemas import (
    ConsolidationJob,
    DlqReason,
    MemoryNode,
    MemoryType,
    StoreStatus,
    parse_job,
)
from memstream.sinks import MemoryFilter, open_store
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.faults import FaultOutcome, record
from tests.support.llm_server import Faults, ScriptedLLM
from tests.support.memories import OWNER, Script, scenario
from tests.support.pipeline import (
    Worker,
    dead_letters,
    pipeline_env,
    read_topic,
    settings_from,
    wait_for,
)
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers

ALL = MemoryFilter(statuses=(StoreStatus.valid, StoreStatus.expired))


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


async def memories(store: object, user: str) -> list[MemoryNode]:
    from memstream.sinks import MemoryStore

    assert isinstance(store, MemoryStore)
    await store.refresh()
    return await store.list_memories(OWNER, user, ALL, limit=200)


def _env(
    tansu: Tansu, tmp_path: Path, backend: str, server: ScriptedLLM, es_url: str | None
) -> dict[str, str]:
    return pipeline_env(
        bootstrap=tansu.bootstrap,
        data_dir=tmp_path,
        backend=backend,
        es_url=es_url,
        extra={
            **server.settings_env(),
            "MEMSTREAM_WINDOW__IDLE_SECONDS": "2",
            "MEMSTREAM_REFLECTION__CHECK_SECONDS": "1",
            "MEMSTREAM_REFLECTION__MIN_INTERVAL_SECONDS": "0",
        },
    )


@pytest.mark.parametrize("backend", ["sqlite", "elasticsearch"])
async def test_consolidation_and_reflection_must_shows(
    backend: str,
    tansu: Tansu,
    tmp_path: Path,
    llm_server: ScriptedLLM,
    request: pytest.FixtureRequest,
) -> None:
    llm_server.reset()
    es_url = request.getfixturevalue("noida").url if backend == "elasticsearch" else None
    env = _env(tansu, tmp_path, backend, llm_server, es_url)
    settings = settings_from(env)
    await create_topics(settings.kafka)
    script = scenario()
    async with MessageProducer(settings.kafka) as producer:
        await producer.send_many([m for m in script.messages])
    worker = Worker(env, tmp_path / "worker.log")
    store = open_store(settings.store, dimensions=384)
    await store.open()
    try:

        async def settled() -> bool:
            dave = await memories(store, "dave")
            return (
                any(n.memory_type is MemoryType.insight for n in dave)
                and len(await memories(store, "alice")) == 2
                and any(n.language == "zh" for n in await memories(store, "li"))
                and len(await memories(store, "carol")) == 1
            )

        assert await wait_for(settled, timeout=120, alive=worker.alive), (
            worker.stats(),
            {
                u: [(n.content, n.memory_type.value) for n in await memories(store, u)]
                for u in ("alice", "dave", "li", "carol")
            },
        )

        # Fiction yields no memory.
        assert await memories(store, "pilot") == []
        # The newer employer wins; the older fact is kept, expired, with valid_to.
        alice = {n.content: n for n in await memories(store, "alice")}
        meituan = alice["I just joined Meituan, first week done!"]
        alibaba = alice["I work at Alibaba as a data engineer."]
        assert meituan.store_status is StoreStatus.valid and meituan.valid_to is None
        assert alibaba.store_status is StoreStatus.expired
        assert alibaba.valid_to == meituan.valid_from
        # A repeated fact is one memory, with both mentions as its provenance.
        (cat,) = await memories(store, "bob")
        assert cat.source_message_ids == ["bob-3", "bob-4"]
        # "Two months ago" in a message of 2024-07-10 is May 2024.
        (marathon,) = await memories(store, "carol")
        assert (marathon.event_time.year, marathon.event_time.month) == (2024, 5)
        # Six food observations -> a diet insight, through the reflection timer.
        dave = await memories(store, "dave")
        (diet,) = [n for n in dave if n.memory_type is MemoryType.insight]
        assert diet.key == "diet" and diet.content.startswith("The diet of Dave: ")
        assert all(n.obs_reflected for n in dave if n.memory_type is MemoryType.observation)
        # Chinese in, Chinese out.
        (li,) = await memories(store, "li")
        assert li.content == "我在杭州工作，周末喜欢爬山。" and li.language == "zh"

        stats = worker.stats()
        assert stats["llm"]["calls_by_step"]["consolidate"] == 13  # one per window
        assert stats["llm"]["calls_by_step"]["reflect"] == 1
        assert stats["llm"]["calls"] == sum(llm_server.calls.values())
        assert stats.get("jobs_failed", 0) == 0
        # The same numbers in Prometheus format on the worker's /metrics.
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{worker.web_port}/metrics")).text
        assert 'memstream_llm_calls_total{step="consolidate"} 13.0' in text
        assert 'memstream_worker_windows_total{trigger="idle_gap"}' in text
    finally:
        worker.stop()
        await store.close()


@pytest.mark.faults
@pytest.mark.parametrize("rate", [0.2, 0.6])
async def test_model_faults_lose_no_window(
    tansu: Tansu, tmp_path: Path, llm_server: ScriptedLLM, rate: float
) -> None:
    """20 % and 60 % of replies fail (429, 500, timeout, malformed JSON, an HTML page, a
    reset connection): the worker keeps going, and every window ends as memories or as a
    dead letter that says why."""
    llm_server.reset()
    llm_server.faults = Faults(rate=rate, kinds=Faults.ALL, timeout_sleep=2.5, seed=11)
    env = _env(tansu, tmp_path, "sqlite", llm_server, None)
    env["MEMSTREAM_LLM__MAX_RETRIES"] = "2"
    settings = settings_from(env)
    await create_topics(settings.kafka)
    s = Script()
    t = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    for u in range(20):
        for w in range(3):
            s.say(
                f"user-{u:02d}",
                f"U{u}",
                t + timedelta(days=w),
                f"Note {w} of user {u}: I went hiking near lake {u * 7 + w}.",
                f"Also I tried a new recipe number {u * 3 + w}.",
            )
    async with MessageProducer(settings.kafka) as producer:
        await producer.send_many(s.messages)
    worker = Worker(env, tmp_path / "worker.log")
    store = open_store(settings.store, dimensions=384)
    await store.open()
    expected = {m.message_id for m in s.messages}
    try:

        async def covered() -> set[str]:
            have: set[str] = set()
            for u in range(20):
                for n in await memories(store, f"user-{u:02d}"):
                    have.update(n.source_message_ids)
            letters = dead_letters(
                await read_topic(
                    settings.kafka.bootstrap_servers,
                    settings.kafka.dlq_topic,
                    expect=10**6,
                    timeout=1,
                )
            )
            for letter in letters:
                job = parse_job(base64.b64decode(letter.value_b64))
                assert letter.reason in (DlqReason.llm_unavailable, DlqReason.llm_output_invalid)
                assert letter.detail
                if isinstance(job, ConsolidationJob):  # reflections can fail too: no messages
                    have.update(m.message_id for m in job.messages)
            return have

        async def all_covered() -> bool:
            return await covered() >= expected

        await wait_for(all_covered, timeout=240, interval=2, alive=worker.alive)
        have = await covered()
        remembered: Counter[tuple[str, ...]] = Counter()
        for u in range(20):
            for n in await memories(store, f"user-{u:02d}"):
                remembered[(n.content, *n.source_message_ids)] += 1
        outcome = record(
            FaultOutcome(
                f"model faults at {rate:.0%} (429, 500, timeout, garbage, HTML, reset)",
                len(expected),
                lost=len(expected - have),
                duplicated=sum(1 for n in remembered.values() if n > 1),
            )
        )
        assert outcome.lost == 0, (sorted(expected - have)[:10], worker.stats())
        assert outcome.duplicated == 0
        assert worker.alive()
        served = sum(llm_server.faults_served.values())
        assert served >= 5, llm_server.faults_served
        stats = worker.stats()
        assert stats["llm"]["errors"], stats["llm"]
    finally:
        worker.stop()
        await store.close()
