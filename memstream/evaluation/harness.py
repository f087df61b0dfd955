"""An isolated embedded pipeline for evaluation and benchmarks: tansu, topics, one worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from memstream.config import Settings, settings_env
from memstream.embedded import WorkerProcess, free_port, start_tansu, stop
from memstream.schemas import ChatMessage
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics


def isolated_settings(base: Settings, workdir: Path, **window: Any) -> Settings:
    """Base settings with their own data dir, broker port, consumer group and index prefix."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    data = base.model_dump()
    data["data_dir"] = workdir / "data"
    data["kafka"]["bootstrap_servers"] = f"127.0.0.1:{free_port()}"
    data["worker"]["app_id"] = f"memstream-{tag}"
    data["store"]["sqlite_path"] = None
    data["store"]["index_prefix"] = f"{base.store.index_prefix}-{tag}"
    data["window"].update(window)
    return Settings.model_validate(data)


class Pipeline:
    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.worker: WorkerProcess | None = None

    async def produce(self, messages: Sequence[ChatMessage]) -> float:
        """Produce all messages; returns the seconds it took."""
        started = time.perf_counter()
        async with MessageProducer(self.settings.kafka) as producer:
            await producer.send_many(messages)
        return time.perf_counter() - started

    def start_worker(self) -> WorkerProcess:
        self.worker = WorkerProcess(settings_env(self.settings), self.workdir / "worker.log")
        return self.worker

    async def wait(
        self,
        done: Callable[[dict[str, Any]], bool],
        *,
        within: float,
        what: str,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Poll the worker's stats until ``done`` says so; fail clearly if it dies or stalls."""
        assert self.worker is not None
        deadline = time.monotonic() + within
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if not self.worker.alive():
                raise RuntimeError(f"worker died; see {self.worker.log_path}")
            stats = self.worker.stats()
            if stats and done(stats):
                return stats
            await asyncio.sleep(interval)
        raise TimeoutError(f"{what} not reached in {within}s; last stats {stats}")

    def stop_worker(self) -> int:
        """Graceful stop: the worker consolidates its open windows first."""
        assert self.worker is not None
        return self.worker.stop(timeout=120)


@contextlib.asynccontextmanager
async def embedded_pipeline(
    settings: Settings, workdir: Path, *, start_worker: bool = True
) -> AsyncIterator[Pipeline]:
    port = int(settings.kafka.bootstrap_servers.rsplit(":", 1)[1])
    broker = start_tansu(port, workdir / "broker.log")
    pipeline = Pipeline(settings, workdir)
    try:
        await create_topics(settings.kafka)
        if start_worker:
            pipeline.start_worker()
        yield pipeline
    finally:
        if pipeline.worker is not None and pipeline.worker.alive():
            pipeline.worker.stop(timeout=120)
        stop(broker)


def ingested(expected: int) -> Callable[[dict[str, Any]], bool]:
    """All messages windowed and every emitted job done (or dead-lettered)."""

    def done(stats: dict[str, Any]) -> bool:
        jobs_emitted = int(stats.get("jobs_emitted", 0))
        finished = int(stats.get("jobs_done_consolidate", 0)) + int(
            stats.get("jobs_failed_consolidate", 0)
        )
        return int(stats.get("messages_windowed", 0)) >= expected and finished >= jobs_emitted

    return done


def reflections_settled(stats: dict[str, Any]) -> bool:
    """Every reflection the timer requested has run (or was dead-lettered)."""
    requested = int(stats.get("reflections_requested", 0))
    finished = int(stats.get("jobs_done_reflect", 0)) + int(stats.get("jobs_failed_reflect", 0))
    return finished >= requested
