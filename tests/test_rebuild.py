"""Rebuilds through the real pipeline, on both stores: a live worker (scripted model) fills
the store, then rebuilds from events, from messages (warm LLM cache) and with a new embedder
run while the worker keeps running and a query service keeps answering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.evaluation.bench import produce_memory_events
from memstream.query.app import create_service
from memstream.rebuild.run import RebuildReport, run_rebuild
from memstream.schemas import AddMemoryJob, ChatMessage, ForgetJob, MemoryNode, StoreStatus
from memstream.sinks import MemoryFilter, MemoryStore, open_store
from memstream.sinks.base import VersionState
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.llm_server import ScriptedLLM
from tests.support.memories import OWNER, scenario
from tests.support.pipeline import Worker, pipeline_env, settings_from, wait_for
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers

ALL = MemoryFilter(statuses=(StoreStatus.valid, StoreStatus.expired))
USERS = ("pilot", "alice", "bob", "carol", "dave", "li", "erin")
#: Users with memories, and a query whose words are in them (text recall answers even when
#: vector recall cannot, e.g. right after a switch to vectors of another model).
QUERIES = {
    "alice": "Where do I work? Meituan",
    "bob": "cat named Mochi",
    "carol": "marathon",
    "dave": "What do I eat? tea",
    "li": "杭州",
}


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


Snapshot = dict[str, tuple[Any, ...]]


async def snapshot(store: MemoryStore) -> Snapshot:
    """Every memory of every user: id -> what must survive a rebuild unchanged."""
    await store.refresh()
    out: Snapshot = {}
    for user in USERS:
        for n in await store.list_memories(OWNER, user, ALL, limit=500):
            out[n.memory_id] = _fields(n)
    return out


def _fields(n: MemoryNode) -> tuple[Any, ...]:
    return (
        n.user_id,
        n.memory_type.value,
        n.content,
        n.store_status.value,
        n.version,
        n.valid_from,
        n.valid_to,
        tuple(n.source_message_ids),
        n.key,
        n.obs_reflected,
    )


class Hammer:
    """A query service under steady load; records every failure and every empty answer."""

    def __init__(self, settings: Settings, embedder: Embedder, store: MemoryStore) -> None:
        self._app = create_service(settings, store=store, embedder=embedder)
        self.requests = 0
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _run(self) -> None:
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            while not self._stop.is_set():
                for user, query in QUERIES.items():
                    r = await client.post(
                        "/v1/retrieve",
                        json={"owner_id": OWNER, "user_id": user, "query": query, "top_k": 5},
                    )
                    self.requests += 1
                    if r.status_code != 200:
                        self.failures.append(f"{user}: HTTP {r.status_code} {r.text[:200]}")
                    elif not r.json()["memories"]:
                        self.failures.append(f"{user}: empty result for {query!r}")
                await asyncio.sleep(0.01)

    def __enter__(self) -> Hammer:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


async def rebuild_under_load(
    settings: Settings, embedder: Embedder, store: MemoryStore, source: str, **options: Any
) -> tuple[RebuildReport, Hammer]:
    hammer = Hammer(settings, embedder, store)
    with hammer:
        await asyncio.sleep(0.3)
        report = await run_rebuild(
            settings,
            "events" if source == "events" else "messages",
            settle_seconds=1.0,
            **options,
        )
        await asyncio.sleep(0.3)
    await hammer.stop()
    return report, hammer


async def isolated(
    backend: str,
    tansu: Tansu,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    extra: dict[str, str] | None = None,
) -> tuple[dict[str, str], Settings]:
    """Own topics (created), group and store on the shared servers: (worker env, settings)."""
    es_url = request.getfixturevalue("noida").url if backend == "elasticsearch" else None
    env = pipeline_env(
        bootstrap=tansu.bootstrap, data_dir=tmp_path, backend=backend, es_url=es_url, extra=extra
    )
    settings = settings_from(env)
    await create_topics(settings.kafka)
    return env, settings


async def start_live(
    settings: Settings,
    env: dict[str, str],
    tmp_path: Path,
    embedder: Embedder,
    messages: list[ChatMessage],
) -> tuple[Worker, MemoryStore]:
    """Produce ``messages``, start a worker on them and open the store; the caller stops both."""
    async with MessageProducer(settings.kafka) as producer:
        await producer.send_many(messages)
    worker = Worker(env, tmp_path / "worker.log")
    store = open_store(settings.store, dimensions=embedder.dimensions)
    await store.open()
    return worker, store


@pytest.mark.parametrize("backend", ["sqlite", "elasticsearch"])
async def test_rebuilds_keep_every_memory_and_every_erasure(
    backend: str,
    tansu: Tansu,
    tmp_path: Path,
    llm_server: ScriptedLLM,
    embedder: Embedder,
    request: pytest.FixtureRequest,
) -> None:
    llm_server.reset()
    env, settings = await isolated(
        backend,
        tansu,
        tmp_path,
        request,
        {
            **llm_server.settings_env(),
            "MEMSTREAM_WINDOW__IDLE_SECONDS": "2",
            "MEMSTREAM_REFLECTION__CHECK_SECONDS": "1",
            "MEMSTREAM_REFLECTION__MIN_INTERVAL_SECONDS": "0",
        },
    )
    script = scenario()
    t = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    script.say("erin", "Erin", t, "I am allergic to peanuts and live in Oslo.")
    worker, store = await start_live(settings, env, tmp_path, embedder, script.messages)
    try:

        async def count(user: str) -> int:
            await store.refresh()
            return len(await store.list_memories(OWNER, user, ALL, limit=500))

        async def settled() -> bool:
            dave = await store.list_memories(OWNER, "dave", ALL, limit=50)
            return (
                any(n.key == "diet" for n in dave)
                and await count("alice") == 2
                and await count("erin") == 1
                and await count("li") == 1
                and await count("carol") == 1
            )

        assert await wait_for(settled, timeout=120, alive=worker.alive), worker.stats()
        # Erin is forgotten (her memory was written, so the log holds events to skip); a
        # memory added by hand must survive a rebuild from messages too.
        async with MessageProducer(settings.kafka) as producer:
            await producer.forget(
                ForgetJob(job_id="forget-erin", owner_id=OWNER, user_id="erin", requested_at=t)
            )
            await producer.send_job(
                AddMemoryJob(
                    job_id="add-1",
                    owner_id=OWNER,
                    user_id="alice",
                    memory_id="manual-alice-1",
                    content="Alice prefers window seats on trains.",
                    requested_at=t + timedelta(days=60),
                )
            )

        async def erased_and_added() -> bool:
            return await count("erin") == 0 and await count("alice") == 3

        assert await wait_for(erased_and_added, timeout=60, alive=worker.alive)
        live = await snapshot(store)
        assert len(live) >= 12 and not any(v[0] == "erin" for v in live.values())
        calls_before = sum(llm_server.calls.values())

        # 1. From events: the identical memory set, erasure kept.
        report, hammer = await rebuild_under_load(settings, embedder, store, "events")
        assert (report.version, report.previous) == (2, 1), report
        assert report.skipped_erased >= 1 and report.invalid == 0, report
        assert await snapshot(store) == live
        assert hammer.requests > 0 and hammer.failures == [], hammer.failures[:5]

        # 2. From messages with a warm cache: the identical set, zero new model calls.
        report, hammer = await rebuild_under_load(settings, embedder, store, "messages")
        assert report.version == 3 and report.llm is not None, report
        assert report.llm.calls == 0 and report.llm.cached >= 14, report
        assert sum(llm_server.calls.values()) == calls_before
        assert report.skipped_erased >= 1 and report.carried_over >= 1, report
        assert await snapshot(store) == live
        assert hammer.requests > 0 and hammer.failures == [], hammer.failures[:5]

        # 3. From events again, after the generation switch: still the same set.
        report, _ = await rebuild_under_load(settings, embedder, store, "events", drop_old=True)
        assert report.version == 4 and report.dropped == [3], report
        assert report.skipped_superseded > 0, report
        assert await snapshot(store) == live

        # 4. From messages again: the memory added by hand now comes from the events of
        # generation 3 (carried over and re-tagged by the first rebuild from messages).
        report, _ = await rebuild_under_load(settings, embedder, store, "messages")
        assert report.version == 5 and report.llm is not None and report.llm.calls == 0, report
        assert report.carried_over >= 1, report
        assert await snapshot(store) == live

        # 5. --reembed with another embedder (other model, other size): every vector
        # replaced, every id kept. The service still runs the old embedder and must answer.
        reembed_env = {
            **env,
            "MEMSTREAM_EMBEDDER__BACKEND": "openai",
            "MEMSTREAM_EMBEDDER__MODEL": "scripted-embed",
            "MEMSTREAM_EMBEDDER__BASE_URL": llm_server.base_url,
            "MEMSTREAM_EMBEDDER__API_KEY": "test",
            "MEMSTREAM_EMBEDDER__DIMENSIONS": "48",
        }
        report, hammer = await rebuild_under_load(
            settings_from(reembed_env), embedder, store, "events", reembed=True
        )
        assert report.version == 6 and report.reembed, report
        assert await snapshot(store) == live
        assert hammer.failures == [], hammer.failures[:5]
        for user in USERS:
            for n in await store.list_memories(OWNER, user, ALL, limit=500):
                assert n.vector is not None and len(n.vector) == 48, n.memory_id
                assert n.embedding_model is not None and "scripted-embed" in n.embedding_model

        states = {v.version: (v.state, v.source) for v in await store.versions()}
        assert states == {
            1: (VersionState.retired, "initial"),
            2: (VersionState.retired, "events"),
            4: (VersionState.retired, "events"),
            5: (VersionState.retired, "messages"),
            6: (VersionState.live, "events+reembed"),
        }
    finally:
        worker.stop()
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", "elasticsearch"])
async def test_an_interrupted_rebuild_leaves_live_alone_and_starts_over(
    backend: str,
    tansu: Tansu,
    tmp_path: Path,
    embedder: Embedder,
    request: pytest.FixtureRequest,
) -> None:
    _, settings = await isolated(backend, tansu, tmp_path, request)
    _, expected = await produce_memory_events(settings, embedder, users=120, per_user=40)
    first = await run_rebuild(settings, "events", settle_seconds=0)
    assert (first.version, first.memories) == (2, expected), first
    # User 0: 40 upserts, 2 deletes and the tombstone, all skipped.
    assert first.skipped_erased == 43 and first.deleted == 119 * 2, first

    async with open_store(settings.store, dimensions=embedder.dimensions) as store:
        task = asyncio.create_task(run_rebuild(settings, "events", settle_seconds=0))

        async def half_written() -> bool:
            versions = await store.versions()
            return any(v.state is VersionState.building and v.memories > 0 for v in versions)

        assert await wait_for(half_written, timeout=60, interval=0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        versions = {v.version: v for v in await store.versions()}
        assert versions[2].state is VersionState.live and versions[2].memories == expected
        assert versions[3].state is VersionState.building
        assert versions[3].memories < expected, "stopped half way"
        assert await store.count() == expected, "readers still see the live version"

        again = await run_rebuild(settings, "events", settle_seconds=0, drop_old=True)
        assert again.restarted and again.dropped == [3, 2], again
        assert (again.version, again.memories) == (4, expected), again
        assert [(v.version, v.state) for v in await store.versions()] == [
            (1, VersionState.retired),
            (4, VersionState.live),
        ]


def test_versions_command_lists_and_refuses_to_drop_live(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from memstream.cli import main

    env = {"MEMSTREAM_DATA_DIR": str(tmp_path), "MEMSTREAM_STORE__BACKEND": "sqlite"}
    runner = CliRunner()
    listed = runner.invoke(main, ["versions"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["version"], r["state"], r["memories"]) for r in rows] == [(1, "live", 0)]
    refused = runner.invoke(main, ["versions", "drop", "1"], env=env)
    assert refused.exit_code == 1 and "is live" in refused.output
    unknown = runner.invoke(main, ["versions", "drop", "9"], env=env)
    assert unknown.exit_code == 1 and "does not exist" in unknown.output
    bad = runner.invoke(main, ["rebuild", "--from", "messages", "--reembed"], env=env)
    assert bad.exit_code == 2 and "--reembed goes with --from events" in bad.output


@pytest.mark.parametrize(
    ("backend", "source"),
    [("sqlite", "events"), ("sqlite", "messages"), ("elasticsearch", "events")],
)
async def test_a_rebuild_catches_up_with_live_traffic(
    backend: str,
    source: str,
    tansu: Tansu,
    tmp_path: Path,
    embedder: Embedder,
    request: pytest.FixtureRequest,
) -> None:
    """Messages keep arriving while the rebuild runs: whatever the worker writes before,
    during or just after the switch ends up in the new version, nothing twice."""
    env, settings = await isolated(
        backend,
        tansu,
        tmp_path,
        request,
        {"MEMSTREAM_WINDOW__IDLE_SECONDS": "1", "MEMSTREAM_WINDOW__MAX_MESSAGES": "4"},
    )
    t0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)

    def wave(n: int) -> list[ChatMessage]:
        return [
            ChatMessage(
                message_id=f"w{n}-u{u}-{i}",
                owner_id="live",
                user_id=f"user-{u:02d}",
                role="user",
                content=f"Wave {n}, user {u}, note {i}: I went hiking near lake {n * 100 + i}.",
                sent_at=t0 + timedelta(days=n, minutes=u, seconds=i),
            )
            for u in range(20)
            for i in range(4)
        ]

    first, second = wave(0), wave(1)
    worker, store = await start_live(settings, env, tmp_path, embedder, first)
    try:

        async def written(n: int) -> bool:
            await store.refresh()
            return await store.count("live") == n

        assert await wait_for(lambda: written(len(first)), timeout=90, alive=worker.alive)

        async def trickle() -> None:
            async with MessageProducer(settings.kafka) as producer:
                for i in range(0, len(second), 8):
                    await producer.send_many(second[i : i + 8])
                    await asyncio.sleep(0.3)

        report, _ = await asyncio.gather(
            run_rebuild(settings, "events" if source == "events" else "messages", settle_seconds=2),
            trickle(),
        )
        assert report.version == 2 and report.previous == 1, report
        everything = {m.message_id for m in first + second}
        assert await wait_for(lambda: written(len(everything)), timeout=90, alive=worker.alive), (
            await store.count("live"),
            report,
        )
        sources: list[str] = []
        for u in range(20):
            for n in await store.list_memories("live", f"user-{u:02d}", ALL, limit=100):
                sources.extend(n.source_message_ids)
        assert sorted(sources) == sorted(everything), "each message once, none missing"
        [live] = [v for v in await store.versions() if v.state is VersionState.live]
        assert live.version == 2
    finally:
        worker.stop()
        await store.close()


@pytest.mark.parametrize(
    ("backend", "source"),
    [("sqlite", "events"), ("sqlite", "messages"), ("elasticsearch", "events")],
)
async def test_writes_racing_the_switch_reach_the_new_version(
    backend: str,
    source: str,
    tansu: Tansu,
    tmp_path: Path,
    embedder: Embedder,
    request: pytest.FixtureRequest,
) -> None:
    """The races a live worker can lose, made to happen: a write (and its event) just before
    the switch, and a write into the old version just after it (the worker looked the live
    version up before the switch). Both must be in the new version. (The messages topic is
    empty here, as if retention had dropped it: a rebuild from messages then derives nothing
    and carries every memory over from the live history rather than lose it.)"""
    from aiokafka import AIOKafkaProducer

    from memstream.rebuild.run import Rebuild
    from memstream.schemas import MemoryEvent
    from memstream.streams.events import event_record
    from tests.support.memories import observation

    _, settings = await isolated(backend, tansu, tmp_path, request)
    _, expected = await produce_memory_events(settings, embedder, users=10, per_user=20)
    t = datetime(2024, 8, 1, tzinfo=UTC)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()

    async def worker_write(store: MemoryStore, text: str, n: int) -> MemoryNode:
        node = observation(embedder, text, t, f"late-{n}", owner="bench", user="u5")
        await store.upsert([node])
        key, value, headers = event_record(MemoryEvent.upsert(node, f"late-{n}", "consolidate"))
        await producer.send_and_wait(
            settings.kafka.memories_topic, value=value, key=key, headers=headers
        )
        return node

    try:
        async with open_store(settings.store, dimensions=embedder.dimensions) as live:
            switch = live.switch_to
            late: list[MemoryNode] = []

            async def racing_switch(version: int) -> int | None:
                late.append(await worker_write(live, "I adopted a parrot named Kiwi.", 1))
                previous = await switch(version)
                assert previous is not None
                async with live.at_version(previous) as old:
                    late.append(await worker_write(old, "Kiwi can say hello.", 2))
                return previous

            live.switch_to = racing_switch  # type: ignore[method-assign]
            rebuild = Rebuild(settings, live, embedder, settle_seconds=1)
            if source == "events":
                report = await rebuild.from_events()
            else:
                report = await rebuild.from_messages()
                assert report.windows == 0 and report.carried_over >= expected, report
            assert report.version == 2, report
            await live.refresh()
            assert await live.count() == expected + 2, report
            for node in late:
                got = await live.get("bench", "u5", node.memory_id)
                assert got is not None and got.content == node.content
    finally:
        await producer.stop()
