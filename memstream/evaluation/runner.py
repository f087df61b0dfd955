"""``memstream eval locomo``: replay through the real pipeline, then ask the query service."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from memstream.config import Settings
from memstream.embedder import load_embedder
from memstream.evaluation.harness import (
    Pipeline,
    embedded_pipeline,
    ingested,
    isolated_settings,
    reflections_settled,
)
from memstream.evaluation.locomo import Conversation, Question, load, recall, summarise
from memstream.query.app import create_service
from memstream.search import RetrievalMode
from memstream.sinks import open_store
from memstream.worker.app import final_stats_path


async def _ask(
    client: httpx.AsyncClient, q: Question, owner: str, k: int, mode: RetrievalMode
) -> list[str]:
    """Top-k memories over the question's users (merged by score); their source message ids."""
    results: list[dict[str, Any]] = []
    for user in q.users:
        r = await client.post(
            "/v1/retrieve",
            json={
                "owner_id": owner,
                "user_id": user,
                "query": q.question,
                "top_k": k,
                "retrieval": mode.value,
            },
        )
        r.raise_for_status()
        results.extend(r.json()["memories"])
    results.sort(key=lambda m: -float(m["score"]))
    return [mid for m in results[:k] for mid in m["source_message_ids"]]


async def _reflection_done(
    pipeline: Pipeline, settings: Settings, max_seconds: float
) -> dict[str, Any]:
    """Wait until the reflection timer has had its say: no request pending for two checks."""
    quiet_for = 2 * settings.reflection.check_seconds + 1
    quiet_since = time.monotonic()
    last = -1
    deadline = time.monotonic() + max_seconds
    while True:
        stats = await pipeline.wait(reflections_settled, within=max_seconds, what="reflections")
        requested = int(stats.get("reflections_requested", 0))
        if requested != last:
            last, quiet_since = requested, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for:
            return stats
        if time.monotonic() > deadline:
            raise TimeoutError("reflections did not settle")
        await asyncio.sleep(0.5)


async def run_locomo(
    base: Settings,
    data: Path,
    *,
    conversations: Sequence[str] | None = None,
    k: int = 10,
    modes: Sequence[RetrievalMode] = (RetrievalMode.hybrid,),
    workdir: Path | None = None,
    max_seconds: float = 1800.0,
) -> dict[str, Any]:
    convs: list[Conversation] = load(data, conversations)
    messages = [m for c in convs for m in c.messages]
    owners = {c.sample_id: c.messages[0].owner_id for c in convs}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memstream-eval-") as tmp:
        root = workdir or Path(tmp)
        settings = isolated_settings(base, root)
        async with embedded_pipeline(settings, root) as pipeline:
            produce_s = await pipeline.produce(messages)
            stats = await pipeline.wait(
                ingested(len(messages)), within=max_seconds, what="all messages consolidated"
            )
            if settings.llm.backend != "none" and settings.reflection.enabled:
                stats = await _reflection_done(pipeline, settings, max_seconds)
            assert pipeline.worker is not None
            pid = pipeline.worker.proc.pid
            code = pipeline.stop_worker()  # closes the tail windows (trigger: shutdown)
            if code != 0:
                raise RuntimeError(f"worker exited with {code}; see {root / 'worker.log'}")
            # The counters after the shutdown drain (its LLM calls count too).
            final = final_stats_path(settings.data_dir, pid)
            if final.is_file():
                stats = json.loads(final.read_text(encoding="utf-8"))
        replay_s = time.perf_counter() - started

        embedder = load_embedder(settings.embedder)
        async with open_store(settings.store, dimensions=embedder.dimensions) as store:
            await store.refresh()
            memories = sum([await store.count(owner) for owner in owners.values()])
            service = create_service(settings, store=store, embedder=embedder)
            transport = httpx.ASGITransport(app=service)
            by_mode: dict[str, Any] = {}
            async with httpx.AsyncClient(transport=transport, base_url="http://eval") as client:
                for mode in modes:
                    t0 = time.perf_counter()
                    scores = []
                    for c in convs:
                        for q in c.questions:
                            sources = await _ask(client, q, owners[c.sample_id], k, mode)
                            scores.append((q.category, recall(q.evidence, sources)))
                    by_mode[mode.value] = {
                        **summarise(scores),
                        "query_seconds": round(time.perf_counter() - t0, 3),
                    }
    user_messages = len(messages)
    llm = stats.get("llm", {})
    llm_calls = int(llm.get("calls", 0))
    llm_tokens = int(llm.get("prompt_tokens", 0)) + int(llm.get("completion_tokens", 0))
    primary = by_mode[modes[0].value]
    return {
        "benchmark": "locomo",
        "data": str(data),
        "conversations": [c.sample_id for c in convs],
        "k": k,
        "retrieval": modes[0].value,
        "recall_at_k": primary["recall_at_k"],
        "full_coverage": primary["full_coverage"],
        "questions": primary["questions"],
        "by_retrieval": by_mode,
        "llm_mode": "llm-free" if settings.llm.backend == "none" else settings.llm.backend,
        "llm_model": None if settings.llm.backend == "none" else settings.llm.model,
        "llm": llm,
        "reflection": settings.reflection.model_dump(),
        "llm_calls_per_100_messages": round(100 * llm_calls / user_messages, 3),
        "llm_tokens_per_100_messages": round(100 * llm_tokens / user_messages, 1),
        "messages": len(messages),
        "user_messages": user_messages,
        "memories": memories,
        "time_to_memory_ms": stats.get("time_to_memory_ms"),
        "windows_by_trigger": stats.get("windows_by_trigger"),
        "produce_seconds": round(produce_s, 3),
        "replay_seconds": round(replay_s, 3),
        "store": settings.store.backend,
        "embedder": embedder.model_id,
    }
