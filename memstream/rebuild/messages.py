"""Messages → memories again: each user's windows re-formed from the log and consolidated by
the worker's own :class:`JobProcessor`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from memstream.config import Settings
from memstream.consolidation.processor import JobOutcome, JobProcessor
from memstream.consolidation.windowing import WindowState, add_message, close_window, due_trigger
from memstream.embedder import Embedder
from memstream.llm import LLMClient
from memstream.rebuild.events import record_key
from memstream.rebuild.plan import ReplayPlan
from memstream.rebuild.report import RebuildCounts
from memstream.schemas import (
    AnyJob,
    ConsolidationJob,
    ForgetJob,
    ReflectionJob,
    reflection_job_id,
    split_user_key,
    utcnow,
)
from memstream.sinks.base import MemoryStore
from memstream.streams.codec import CONTROL_HEADER, Rejected
from memstream.streams.producer import EventPublisher
from memstream.streams.reader import Record
from memstream.streams.routing import route_record

log = logging.getLogger(__name__)

#: Windows consolidated per processor call: few with a model (each is a call), many without
#: (one embedding batch for all).
JOBS_PER_RUN_LLM = 32
JOBS_PER_RUN_VERBATIM = 512
#: Reflection rounds per user at the end (each takes up to ``reflection.max_observations``).
MAX_REFLECTION_ROUNDS = 50


class Deriver:
    """Re-forms each user's windows from the messages (event-time rules, as the live worker
    cuts them) and consolidates them with the worker's own :class:`JobProcessor`."""

    def __init__(
        self,
        settings: Settings,
        store: MemoryStore,
        embedder: Embedder,
        plan: ReplayPlan,
        counts: RebuildCounts,
        publisher: EventPublisher,
        llm: LLMClient | None,
    ) -> None:
        self._s = settings
        self._store = store
        self._plan = plan
        self._counts = counts
        self._processor = JobProcessor(settings, store, embedder, publisher.publish, llm=llm)
        self._windows: dict[str, WindowState] = {}
        self._jobs: list[AnyJob] = []
        self._touched: set[str] = set()
        self._batch = JOBS_PER_RUN_LLM if llm is not None else JOBS_PER_RUN_VERBATIM
        self.left_open: dict[str, WindowState] = {}
        #: Message ids of the windows this replay consolidated itself.
        self.consolidated: set[str] = set()

    async def feed(self, records: Sequence[Record]) -> None:
        partitions = self._s.kafka.partitions
        skew = timedelta(seconds=self._s.window.max_future_skew_seconds)
        for r in records:
            self._counts.records_read += 1
            key = record_key(r)
            if self._plan.erased_message(r.partition, r.offset, key):
                self._counts.skipped_erased += 1
                continue
            arrived = datetime.fromtimestamp(r.timestamp_ms / 1000, tz=UTC)
            routed = route_record(  # judged against its arrival, as the worker judged it then
                r.key,
                r.value,
                r.headers.get(CONTROL_HEADER),
                partitions=partitions,
                max_bytes=self._s.kafka.max_message_bytes,
                now=arrived,
                max_future_skew=skew,
            )
            if isinstance(routed, Rejected):
                self._counts.invalid += 1
                continue
            if routed.home != r.partition:
                continue  # the worker re-routed it: the copy on its home partition counts
            decoded, user = routed.item, routed.key.decode()
            if isinstance(decoded, ForgetJob):  # came after the first pass
                await self._run()
                self._windows.pop(user, None)
                self._touched.discard(user)
                await self._run_one(decoded)
                continue
            state = self._windows.get(user, WindowState())
            # The record's own bytes, as the worker keeps them: windows close where it closed them.
            state, jobs = add_message(state, decoded, arrived, self._s.window, r.value)
            self._windows[user] = state
            self._jobs.extend(jobs)
            if len(self._jobs) >= self._batch:
                await self._run()
        await self._run()

    async def finish(self) -> None:
        """Close the windows the live worker has closed by now (same wall-clock rules);
        leave the others to it, then reflect every user that got new observations."""
        now = utcnow()
        for user, state in self._windows.items():
            if state.is_empty:
                continue
            trigger = due_trigger(state, now, self._s.window)
            if trigger is None:
                self.left_open[user] = state
            else:
                self._jobs.append(close_window(state, trigger, now))
        self._windows.clear()
        await self._run()
        if self._processor.reflects:
            for user in sorted(self._touched):
                await self._reflect(user)

    async def _reflect(self, user: str) -> None:
        owner_id, user_id = split_user_key(user)
        for _ in range(MAX_REFLECTION_ROUNDS):
            at = utcnow()
            job = ReflectionJob(
                job_id=reflection_job_id(owner_id, user_id, at),
                owner_id=owner_id,
                user_id=user_id,
                unreflected=0,
                requested_at=at,
            )
            [outcome] = await self._processor.process([job])
            self._check(outcome)
            if outcome.failure is not None or outcome.memories == 0:
                return

    async def _run(self) -> None:
        jobs, self._jobs = self._jobs, []
        if not jobs:
            return
        outcomes = await self._processor.process(jobs)
        for job, outcome in zip(jobs, outcomes, strict=True):
            self._check(outcome)
            if isinstance(job, ConsolidationJob):
                self._counts.windows += 1
                if outcome.failure is None:
                    self.consolidated.update(m.message_id for m in job.messages)
                if outcome.new_observations or self._processor.llm is None:
                    self._touched.add(job.key)

    async def _run_one(self, job: AnyJob) -> JobOutcome:
        [outcome] = await self._processor.process([job])
        if outcome.error is not None:  # store or broker down: the rebuild stops, live untouched
            raise outcome.error
        return outcome

    def _check(self, outcome: JobOutcome) -> None:
        if outcome.error is not None:
            raise outcome.error
        if outcome.failure is not None:
            self._counts.windows_failed += 1
            log.warning("job %s failed: %s %s", outcome.job_id, outcome.failure, outcome.detail)
        self._counts.written += outcome.applied
