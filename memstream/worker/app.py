"""The Faust app: topics and the agents wired to them.

Kept small on purpose; each agent lives in its own module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import faust

from memstream.metrics import worker_metrics
from memstream.runtime import free_port
from memstream.schemas import ConsolidationJob
from memstream.streams.topics import TopicError, check_topics
from memstream.worker.context import WorkerContext
from memstream.worker.ingest import register_ingest
from memstream.worker.jobs import register_jobs
from memstream.worker.transport import use_fetch_max_wait

log = logging.getLogger(__name__)


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in bootstrap_servers.split(",") if hp.strip()]


class WorkerApp(faust.App):
    """A Faust app whose agents do not die alone: stock Faust logs an agent's crash and keeps
    the worker up (its web pages answer, its partitions stay assigned), so ingestion would
    stop while every health check stayed green. Here an agent that dies crashes the worker:
    it exits non-zero, its liveness fails, and an orchestrator restarts it. Nothing its
    batch held was committed, so the restarted worker reads it again. (Timers already crash
    the app on an error.)"""

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        await super()._on_agent_error(agent, exc)
        log.critical(
            "agent %s died: %s: %s; the worker stops (exit status 1) so that it is restarted",
            agent.name,
            type(exc).__name__,
            exc,
        )
        await self.crash(exc)


def create_app(ctx: WorkerContext) -> faust.App:
    s = ctx.settings
    k = s.kafka
    use_fetch_max_wait(s.worker.fetch_max_wait_ms)
    web_port = s.worker.web_port or free_port(s.worker.web_host)
    log.info("worker web (stats, health) on http://%s:%d/", s.worker.web_host, web_port)
    app = WorkerApp(
        s.worker.app_id,
        broker=broker_urls(k.bootstrap_servers),
        store="memory://",
        datadir=str(s.data_dir / "faust"),
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        broker_session_timeout=s.worker.broker_session_timeout,
        broker_rebalance_timeout=s.worker.broker_rebalance_timeout,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=max(1_048_576, 2 * s.window.max_bytes, 4 * k.max_message_bytes),
        # 0 = a free port, chosen here: Faust itself refuses 0.
        web_port=web_port,
        stream_buffer_maxsize=s.worker.stream_buffer,
        web_bind=s.worker.web_host,
        web_in_thread=False,
        # Messages of open windows stay unacknowledged on purpose (see worker/ingest.py):
        # shutdown must not wait for them, and a partition's commit may pause for as long
        # as a window may stay open.
        stream_wait_empty=False,
        broker_commit_livelock_soft_timeout=s.window.max_age_seconds + 2 * s.window.idle_seconds,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    topics = {
        "messages": app.topic(k.messages_topic, partitions=k.partitions, **raw),
        "jobs": app.topic(k.jobs_topic, partitions=k.partitions, **raw),
        "memories": app.topic(k.memories_topic, partitions=k.partitions, **raw),
        "dlq": app.topic(k.dlq_topic, partitions=k.partitions, **raw),
    }
    drain = register_ingest(app, ctx, topics)
    processor, events_acknowledged = register_jobs(app, ctx, topics)

    async def process_inline(jobs: list[ConsolidationJob]) -> None:
        outcomes = await processor.process(jobs)
        await events_acknowledged()
        failed = [o for o in outcomes if o.error is not None or o.failure is not None]
        if failed:
            # The windows stay unacknowledged: the next start reads them again and the jobs
            # agent retries or dead-letters them with the reason.
            raise RuntimeError(f"{len(failed)} of {len(jobs)} open windows did not consolidate")

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types a union it cannot match
    async def consolidate_open_windows(
        sender: Any, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        # Runs after the consumer stopped, while the producer still works: open windows are
        # consolidated now rather than read again on the next start (and lost with an in-memory
        # broker).
        try:
            await ctx.ensure_store()
            closed = await asyncio.wait_for(
                drain(process_inline), timeout=s.worker.shutdown_drain_seconds
            )
            log.info("shutdown: consolidated %d open windows", closed)
        except Exception:
            log.exception("shutdown: could not consolidate open windows (they are read again)")
        finally:
            await ctx.close_store()
            _write_final_stats(ctx)

    @app.timer(interval=s.worker.topic_check_seconds, name="memstream.watch_topics")  # type: ignore[untyped-decorator]
    async def watch_topics() -> None:
        """Topics gone or changed under the worker (an in-memory broker restarted) stop it:
        its offsets and windows no longer mean anything. Restarted, it creates the missing
        topics with their specs. A broker that does not answer is only logged."""
        try:
            await asyncio.wait_for(check_topics(k), timeout=max(5.0, s.worker.topic_check_seconds))
        except TopicError as exc:
            log.critical("%s; the worker stops (exit status 1)", exc)
            raise
        except Exception as exc:  # the broker is away: the clients retry on their own
            log.warning("could not check the topics: %s: %s", type(exc).__name__, exc)

    @app.page("/stats/")
    async def stats(web: Any, request: Any) -> Any:
        assigned = sorted(
            tp.partition for tp in app.consumer.assignment() if tp.topic == k.messages_topic
        )
        return web.json(
            {
                **ctx.stats.as_dict(),
                "assigned_partitions": assigned,
                # Batches a rebalance cut short; their rest is read again (worker/transport.py).
                "deliveries_interrupted": getattr(app.consumer, "deliveries_interrupted", 0),
            }
        )

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp takes the charset apart from the content type.
        return web.text(
            worker_metrics(ctx.stats.as_dict).decode("utf-8"), content_type="text/plain"
        )

    return app


def final_stats_path(data_dir: Path, pid: int) -> Path:
    return data_dir / f"worker-stats-{pid}.json"


def _write_final_stats(ctx: WorkerContext) -> None:
    """The counters as they were at exit (after the shutdown drain): the last word on what
    this worker did, for operators and for the evaluation's LLM-cost figure."""
    path = final_stats_path(ctx.settings.data_dir, os.getpid())
    try:
        path.write_text(json.dumps(ctx.stats.as_dict()), encoding="utf-8")
    except OSError:
        log.warning("could not write %s", path)
