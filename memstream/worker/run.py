"""Run the Faust worker in this process (``memstream worker``)."""

from __future__ import annotations

import asyncio
import logging

import faust

from memstream.config import Settings
from memstream.consolidation.scheduler import ReflectionScheduler
from memstream.embedder import load_embedder
from memstream.llm import load_llm
from memstream.runtime import tune_gc
from memstream.sinks import open_store
from memstream.streams.topics import create_topics
from memstream.worker.app import create_app
from memstream.worker.context import WorkerContext, WorkerStats


def build_worker_app(settings: Settings) -> tuple[faust.App, WorkerContext]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder(settings.embedder)
    store = open_store(settings.store, dimensions=embedder.dimensions)
    stats = WorkerStats()
    llm = load_llm(settings.llm, usage=stats.llm)
    scheduler = ReflectionScheduler(
        threshold=settings.reflection.threshold,
        min_interval=settings.reflection.min_interval_seconds,
    )
    ctx = WorkerContext(
        settings=settings,
        store=store,
        embedder=embedder,
        stats=stats,
        llm=llm,
        scheduler=scheduler,
    )
    return create_app(ctx), ctx


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    """Create topics if missing, then run the worker until SIGTERM/SIGINT (blocking)."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(create_topics(settings.kafka))
    app, _ = build_worker_app(settings)
    tune_gc()
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
