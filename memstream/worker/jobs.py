"""Jobs agent: consume ``memstream.jobs`` and run each through the :class:`JobProcessor`;
the reflection timer puts reflection jobs on the same topic.

One jobs topic keyed by user serialises all changes to a user's memories. A job that fails
unexpectedly is retried with backoff, then dead-lettered; a job the model cannot serve
(output that does not validate twice, or still unavailable after the client's retries) is
dead-lettered with that reason at once. The worker never crashes on a job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from pydantic import ValidationError

from memstream.consolidation.processor import JobOutcome, JobProcessor
from memstream.schemas import (
    AnyJob,
    ConsolidationJob,
    DeadLetter,
    DlqReason,
    MemoryEvent,
    ReflectionJob,
    parse_job,
    reflection_job_id,
    split_user_key,
    utcnow,
)
from memstream.schemas.dlq import letter_key
from memstream.streams.events import event_record
from memstream.worker.acks import hold_batch
from memstream.worker.context import WorkerContext
from memstream.worker.delivery import InOrderDelivery

log = logging.getLogger(__name__)

RETRIES = 3


def register_jobs(
    app: faust.App, ctx: WorkerContext, topics: dict[str, faust.TopicT]
) -> tuple[JobProcessor, Callable[[], Awaitable[None]]]:
    """Wire the jobs agent and the reflection timer; returns the processor and the wait for
    its memory events to be acknowledged (for inline runs at shutdown)."""
    jobs_topic, memories_topic, dlq_topic = topics["jobs"], topics["memories"], topics["dlq"]
    stats = ctx.stats

    #: Sends of memory events not yet acknowledged by the broker.
    unacked: list[Any] = []

    async def publish(event: MemoryEvent) -> None:
        stats.counters["memory_events"] += 1
        key, value, headers = event_record(event)
        unacked.append(await memories_topic.send(key=key, value=value, headers=headers, force=True))

    async def events_acknowledged() -> None:
        """Every store write has its event on the log before the batch's jobs are committed:
        a send that fails ends the agent (and the worker), and the restarted worker runs the
        jobs again (writes are idempotent, events are published for every write)."""
        while unacked:
            await unacked.pop(0)

    processor = JobProcessor(
        ctx.settings, ctx.store, ctx.embedder, publish, llm=ctx.llm, scheduler=ctx.scheduler
    )
    delivery = InOrderDelivery(app, ctx.settings.kafka.jobs_topic, stats)

    async def dead_letter(msg: Any, reason: DlqReason, detail: str) -> None:
        """Send the job's letter and wait for the broker's ack (then count it): the job's
        offset is committed only after, so a job is never lost without its letter."""
        letter = DeadLetter.of(
            reason,
            detail,
            stage="jobs",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
        )
        value = letter.model_dump_json().encode()
        await (await dlq_topic.send(key=letter_key(msg.key), value=value, force=True))
        stats.dlq_by_reason[reason.value] += 1

    async def settle(msg: Any, job: AnyJob, outcome: JobOutcome) -> bool:
        """Count a finished job; dead-letter one the model could not serve. False = retry."""
        if outcome.error is not None:
            return False
        if outcome.failure is not None:
            log.warning("job %s dead-lettered: %s", job.job_id, outcome.detail)
            await dead_letter(msg, outcome.failure, outcome.detail)
            stats.counters["jobs_failed"] += 1
            stats.counters[f"jobs_failed_{job.job_type}"] += 1
            return True
        stats.counters["jobs_done"] += 1
        stats.counters[f"jobs_done_{job.job_type}"] += 1
        stats.counters["memories_written"] += outcome.applied
        if isinstance(job, ConsolidationJob):
            # Time-to-memory: first arrival in the window -> memory written (wall clock).
            stats.time_to_memory_ms.append((utcnow() - job.opened_at).total_seconds() * 1000)
        return True

    async def run_one(msg: Any, job: AnyJob) -> None:
        for attempt in range(1, RETRIES + 1):
            try:
                (outcome,) = await processor.process([job])
                if outcome.error is not None:
                    raise outcome.error
                await settle(msg, job, outcome)
                return
            except Exception as exc:
                log.warning("job %s failed (attempt %d/%d): %r", job.job_id, attempt, RETRIES, exc)
                if attempt == RETRIES:
                    await dead_letter(msg, DlqReason.job_failed, f"{type(exc).__name__}: {exc}")
                    stats.counters["jobs_failed"] += 1
                    stats.counters[f"jobs_failed_{job.job_type}"] += 1
                    return
                await asyncio.sleep(0.5 * 2**attempt)

    @app.agent(jobs_topic, name="memstream.jobs")
    async def consume_jobs(stream: faust.StreamT[bytes]) -> None:
        await ctx.ensure_store()
        async for events in cast(faust.Stream[bytes], stream).take_events(64, within=0.2):
            with hold_batch(events):
                await run_batch(events)
                await events_acknowledged()

    async def run_batch(events: Sequence[Any]) -> None:
        parsed: list[tuple[Any, AnyJob]] = []
        for event in events:
            if not await delivery.admit(event):
                continue
            try:
                parsed.append((event.message, parse_job(event.message.value or b"")))
            except ValidationError as exc:
                await dead_letter(event.message, DlqReason.invalid_value, str(exc))
        if not parsed:
            return
        try:
            outcomes = await processor.process([job for _, job in parsed])
        except Exception as exc:
            log.warning("batch of %d jobs failed (%r); retrying one by one", len(parsed), exc)
            for msg, job in parsed:
                await run_one(msg, job)
            return
        for (msg, job), outcome in zip(parsed, outcomes, strict=True):
            if not await settle(msg, job, outcome):
                await run_one(msg, job)

    if processor.reflects and ctx.scheduler is not None:
        scheduler = ctx.scheduler

        @app.timer(interval=ctx.settings.reflection.check_seconds)  # type: ignore[untyped-decorator]
        async def request_reflections() -> None:
            """The timer-driven agent: a reflection job for each user that is due."""
            for key, count in scheduler.take_due(time.monotonic()):
                owner_id, user_id = split_user_key(key)
                requested = utcnow()
                job = ReflectionJob(
                    job_id=reflection_job_id(owner_id, user_id, requested),
                    owner_id=owner_id,
                    user_id=user_id,
                    unreflected=count,
                    requested_at=requested,
                )
                stats.counters["reflections_requested"] += 1
                await jobs_topic.send(
                    key=key.encode(), value=job.model_dump_json().encode(), force=True
                )

    return processor, events_acknowledged
