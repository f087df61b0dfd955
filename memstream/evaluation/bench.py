"""``memstream bench``: benchmarks that print one JSON object (never timed assertions)."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from memstream.config import Settings, settings_env
from memstream.embedded import free_port, spawn, stop, wait_port
from memstream.embedder import Embedder, load_embedder
from memstream.evaluation.harness import isolated_settings
from memstream.evaluation.probes import prometheus_counters, rss_mb
from memstream.evaluation.synthetic import OWNER, SUBJECTS, observation, sentence
from memstream.metrics import quantile
from memstream.schemas import MemoryEvent
from memstream.sinks import open_store
from memstream.streams.producer import EventPublisher


async def load_store(settings: Settings, users: int, per_user: int, seed: int = 1) -> float:
    """Write users × per_user observations with real embeddings; returns seconds."""
    rng = random.Random(seed)
    embedder = load_embedder(settings.embedder)
    started = time.perf_counter()
    base = datetime(2024, 1, 1, tzinfo=UTC)
    async with open_store(settings.store, dimensions=embedder.dimensions) as store:
        texts = [sentence(rng, i) for i in range(per_user * 4)]
        vectors = embedder.embed(texts)  # a shared pool: embedding 50k texts is not the point
        for u in range(users):
            nodes = []
            for i in range(per_user):
                j = rng.randrange(len(texts))
                when = base + timedelta(days=u % 365, minutes=i)
                nodes.append(
                    observation(u, i, texts[j], when, vectors[j].tolist(), embedder.model_id)
                )
            await store.upsert(nodes)
        await store.refresh()
    return time.perf_counter() - started


async def bench_retrieval(
    base: Settings, *, users: int, per_user: int, clients: int, seconds: float, top_k: int
) -> dict[str, Any]:
    """Load a store, start the query service as its own process, hammer it from C clients."""
    with tempfile.TemporaryDirectory(prefix="memstream-bench-") as tmp:
        settings = isolated_settings(base, Path(tmp))
        load_s = await load_store(settings, users, per_user)
        port = free_port()
        env = {**settings_env(settings), "MEMSTREAM_API__PORT": str(port)}
        proc = spawn(
            [sys.executable, "-m", "memstream", "serve", "--port", str(port)],
            {**os.environ, **env},
            Path(tmp) / "service.log",
        )
        try:
            wait_port("127.0.0.1", port, timeout=60, proc=proc)
            url = f"http://127.0.0.1:{port}/v1/retrieve"
            rng = random.Random(2)
            latencies: list[float] = []
            errors = 0
            empty = 0
            # aiohttp, not httpx: the clients share the 2 cores with the service, and a
            # load generator should spend as little of them as it can (httpx costs ~3x).
            connector = aiohttp.TCPConnector(limit=clients)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
                # Warm up: first requests pay for lazy imports and caches.
                for _ in range(20):
                    warm = {"owner_id": OWNER, "user_id": "u0", "query": "warm up"}
                    async with client.post(url, json={**warm, "top_k": top_k}) as r:
                        await r.read()
                deadline = time.perf_counter() + seconds

                async def run() -> None:
                    nonlocal errors, empty
                    while time.perf_counter() < deadline:
                        body = {
                            "owner_id": OWNER,
                            "user_id": f"u{rng.randrange(users)}",
                            "query": f"what about {rng.choice(SUBJECTS)}?",
                            "top_k": top_k,
                        }
                        t0 = time.perf_counter()
                        try:
                            async with client.post(url, json=body) as r:
                                payload = await r.read()
                                ok = r.status == 200
                            if ok and b'"memories":[]' in payload:
                                empty += 1
                        except (aiohttp.ClientError, TimeoutError):
                            ok = False
                        latencies.append((time.perf_counter() - t0) * 1000)
                        errors += 0 if ok else 1

                started = time.perf_counter()
                await asyncio.gather(*(run() for _ in range(clients)))
                elapsed = time.perf_counter() - started
                metrics_url = f"http://127.0.0.1:{port}/metrics"
                async with client.get(metrics_url) as r:
                    scraped = prometheus_counters(await r.text())
            service_rss = rss_mb(proc.pid)
        finally:
            stop(proc)
    return {
        "benchmark": "retrieval",
        "store": settings.store.backend,
        "users": users,
        "memories_per_user": per_user,
        "memories": users * per_user,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "top_k": top_k,
        "requests": len(latencies),
        "errors": errors,
        "empty_results": empty,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": _ms(quantile(latencies, 0.50)),
        "p95_ms": _ms(quantile(latencies, 0.95)),
        "p99_ms": _ms(quantile(latencies, 0.99)),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "service_rss_mb": service_rss,
        "load_seconds": round(load_s, 2),
        "queries_per_embed_call": round(
            scraped.get("memstream_query_embeddings_total", 0.0)
            / max(scraped.get("memstream_query_embed_calls_total", 0.0), 1.0),
            2,
        ),
        "note": "client and service share the machine's 2 cores; every query is embedded "
        "(concurrent ones share model calls)",
    }


def _ms(value: float | None) -> float:
    return round(value, 2) if value is not None else float("nan")


async def bench_ingest(
    base: Settings, *, messages: int, users: int, partitions: int
) -> dict[str, Any]:
    """Worker ingest path (validate + window) vs a bare Faust agent, same topic, same run."""
    from memstream.config import WindowSettings
    from memstream.evaluation.harness import embedded_pipeline
    from memstream.schemas import ChatMessage

    big = WindowSettings().model_dump()
    big.update(max_messages=1000, max_tokens=10**6, idle_seconds=10**6, max_age_seconds=10**7)
    big["early_memories"] = False  # the ingest path alone: no job may compete for the cores
    rng = random.Random(3)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    batch = [
        ChatMessage(
            message_id=f"m{i}",
            owner_id=OWNER,
            user_id=f"u{i % users}",
            role="user",
            content=sentence(rng, i),
            sent_at=start + timedelta(seconds=i),
        )
        for i in range(messages)
    ]
    with tempfile.TemporaryDirectory(prefix="memstream-bench-") as tmp:
        data = isolated_settings(base, Path(tmp)).model_dump()
        data["kafka"]["partitions"] = partitions
        data["window"] = big
        settings = Settings.model_validate(data)
        async with embedded_pipeline(settings, Path(tmp), start_worker=False) as pipeline:
            produce_s = await pipeline.produce(batch)
            bare = await asyncio.to_thread(_run_bare, settings, messages, Path(tmp) / "bare.log")
            bare_batched = await asyncio.to_thread(
                _run_bare, settings, messages, Path(tmp) / "bare-batched.log", worker_consumer=True
            )
            pipeline.start_worker()
            first = await pipeline.wait(
                lambda s: int(s.get("messages_in", 0)) > 0, within=120, what="first message"
            )
            t0 = time.perf_counter() - 0.1  # the poll interval it may have been seen late by
            del first
            await pipeline.wait(
                lambda s: int(s.get("messages_windowed", 0)) >= messages,
                within=1800,
                what="all messages windowed",
                interval=0.05,
            )
            ingest_s = time.perf_counter() - t0
            assert pipeline.worker is not None
            worker_rss = rss_mb(pipeline.worker.proc.pid)
            pipeline.worker.kill()  # a bench: no need to consolidate 100k messages on the way out
    ingest_rate = messages / ingest_s
    bare_rate = bare["messages"] / bare["seconds"]
    batched_rate = bare_batched["messages"] / bare_batched["seconds"]
    return {
        "benchmark": "ingest",
        "messages": messages,
        "users": users,
        "partitions": partitions,
        "produce_msgs_per_s": round(messages / produce_s, 1),
        "ingest_msgs_per_s": round(ingest_rate, 1),
        "bare_faust_msgs_per_s": round(bare_rate, 1),
        "ratio": round(ingest_rate / bare_rate, 3),
        "bare_worker_consumer_msgs_per_s": round(batched_rate, 1),
        "ratio_same_consumer": round(ingest_rate / batched_rate, 3),
        "worker_rss_mb": worker_rss,
        "note": "ingest = first message seen to all windowed (stats polled every 50 ms); "
        "windows sized so none closes during the run; the embedder is loaded in the worker; "
        "bare_faust = stock Faust; bare_worker_consumer = the same bare agent on the worker's "
        "consumer (one delivery task per fetched batch)",
    }


def _run_bare(
    settings: Settings, expect: int, log_path: Path, *, worker_consumer: bool = False
) -> dict[str, float]:
    import json
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "memstream.evaluation.bare_faust",
        settings.kafka.bootstrap_servers,
        settings.kafka.messages_topic,
        str(settings.kafka.partitions),
        str(expect),
        f"bare-{settings.worker.app_id}" + ("-worker-consumer" if worker_consumer else ""),
        str(log_path.with_suffix(".json")),
        *(["worker-consumer"] if worker_consumer else []),
    ]
    with log_path.open("wb") as log:
        subprocess.run(cmd, stdout=log, stderr=log, timeout=1800, check=True)
    result: dict[str, float] = json.loads(log_path.with_suffix(".json").read_text())
    return result


async def produce_memory_events(
    settings: Settings, embedder: Embedder, *, users: int, per_user: int, seed: int = 5
) -> tuple[int, int]:
    """Memory events as workers would write them: users × per_user upserts, every 20th
    memory deleted again, user 0 forgotten at the end. Returns (events, memories expected)."""
    rng = random.Random(seed)
    texts = [sentence(rng, i) for i in range(2000)]
    vectors = [v.tolist() for v in embedder.embed(texts)]
    when = datetime(2024, 1, 1, tzinfo=UTC)
    events = 0
    async with EventPublisher(settings.kafka, linger_ms=50) as publisher:
        for u in range(users):
            for i in range(per_user):
                j = rng.randrange(len(texts))
                at = when + timedelta(minutes=i)
                node = observation(u, i, texts[j], at, vectors[j], embedder.model_id)
                node.recorded_at = when
                batch = [MemoryEvent.upsert(node, f"job-{u}-{i}", "consolidate")]
                if i % 20 == 19:
                    batch.append(MemoryEvent.delete(node, f"del-{u}-{i}", "delete"))
                if u == 0 and i == per_user - 1:
                    batch.append(MemoryEvent.tombstone(OWNER, "u0", "forget-u0", when))
                for event in batch:
                    await publisher.publish(event)
                    events += 1
    return events, (users - 1) * (per_user - per_user // 20)


async def bench_rebuild(
    base: Settings, *, users: int, per_user: int, reembed: bool = False
) -> dict[str, Any]:
    """``rebuild --from events`` of users × per_user memories (a twentieth later deleted, one
    user forgotten) on an embedded broker, into the configured store."""
    from memstream.evaluation.harness import embedded_pipeline
    from memstream.rebuild.run import run_rebuild

    embedder = load_embedder(base.embedder)
    with tempfile.TemporaryDirectory(prefix="memstream-bench-") as tmp:
        settings = isolated_settings(base, Path(tmp))
        async with embedded_pipeline(settings, Path(tmp), start_worker=False):
            events, expected = await produce_memory_events(
                settings, embedder, users=users, per_user=per_user
            )
            report = await run_rebuild(settings, "events", reembed=reembed, settle_seconds=0)
    return {
        "benchmark": "rebuild",
        "store": settings.store.backend,
        "reembed": reembed,
        "events": events,
        "memories": report.memories,
        "expected_memories": expected,
        "correct": report.memories == expected,
        "replay_seconds": report.replay_seconds,
        "events_per_s": round(report.records_read / report.replay_seconds, 1),
        "memories_per_s": report.memories_per_second,
        "rss_mb": rss_mb(os.getpid()),
        "note": "replay = scan the headers, then decode, apply and write (no settle time); "
        "memories_per_s counts memories written",
    }


async def bench_time_to_memory(
    base: Settings, *, messages: int, users: int, interval: float, within: float = 300.0
) -> dict[str, Any]:
    """How long a user's message takes to become searchable: produced one at a time (each
    after its broker ack) into a running pipeline, then polled for in the store the query
    service reads. With the settings' model (``MEMSTREAM_LLM__*``) when one is configured."""
    from memstream.evaluation.harness import embedded_pipeline, ingested
    from memstream.schemas import ChatMessage
    from memstream.streams.producer import MessageProducer

    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="memstream-bench-") as tmp:
        settings = isolated_settings(base, Path(tmp))
        embedder = load_embedder(settings.embedder)
        latencies: list[float] = []
        async with (
            embedded_pipeline(settings, Path(tmp)) as pipeline,
            open_store(settings.store, dimensions=embedder.dimensions) as store,
        ):
            await pipeline.wait(
                lambda s: bool(s.get("assigned_partitions")), within=120, what="worker joined"
            )
            # message id -> (user, when its ack came); found once a memory cites it (any
            # memory: with a model, facts have their own ids).
            pending: dict[str, tuple[str, float]] = {}

            async def poll() -> None:
                while pending:
                    await store.refresh()
                    for user in {u for u, _ in pending.values()}:
                        nodes = await store.list_memories(OWNER, user, limit=1000)
                        cited = {m for n in nodes for m in n.source_message_ids}
                        for mid in cited & pending.keys():
                            latencies.append(time.perf_counter() - pending.pop(mid)[1])
                    await asyncio.sleep(0.05)

            started = time.perf_counter()
            async with MessageProducer(settings.kafka) as producer:
                poller: asyncio.Task[None] | None = None
                for i in range(messages):
                    user = f"u{i % users}"
                    message = ChatMessage(
                        message_id=f"ttm-{i}",
                        owner_id=OWNER,
                        user_id=user,
                        role="user",
                        content=sentence(rng, i),
                        sent_at=datetime.now(UTC),
                    )
                    await producer.send_many([message])  # returns once the broker acked it
                    pending[message.message_id] = (user, time.perf_counter())
                    if poller is None or poller.done():
                        poller = asyncio.create_task(poll())
                    await asyncio.sleep(interval)
                deadline = time.perf_counter() + within
                while pending and time.perf_counter() < deadline:
                    if poller is None or poller.done():
                        poller = asyncio.create_task(poll())
                    await asyncio.sleep(0.1)
            if poller is not None:
                poller.cancel()
            missing = len(pending)
            stats = await pipeline.wait(ingested(messages), within=within, what="all jobs done")
    ordered = sorted(latencies)

    def q(at: float) -> float | None:
        value = quantile(ordered, at)
        return None if value is None else round(value, 3)

    return {
        "benchmark": "time-to-memory",
        "llm_mode": "llm-free" if settings.llm.backend == "none" else settings.llm.backend,
        "early_memories": settings.window.early_memories and settings.llm.backend == "none",
        "idle_seconds": settings.window.idle_seconds,
        "messages": messages,
        "users": users,
        "interval_s": interval,
        "found": len(latencies),
        "missing": missing,
        "p50_s": q(0.5),
        "p95_s": q(0.95),
        "max_s": round(ordered[-1], 3) if ordered else None,
        "seconds": round(time.perf_counter() - started, 1),
        "windows_by_trigger": stats.get("windows_by_trigger", {}),
        "note": "from the broker's ack of a message to its memory being readable in the store "
        "the query service reads; client, broker, worker and store share the machine",
    }
