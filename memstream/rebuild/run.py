"""Rebuilds: write a new store version from the log while the live one keeps serving, catch
up with the live tail, switch in one atomic step, keep the old version until dropped.

``events``: re-index the memory events (``reembed``: with the configured embedder, after a
model change). ``messages``: re-derive memories from the raw messages through the full
consolidation pipeline; the LLM response cache makes unchanged prompts free.

An interrupted rebuild leaves the live version untouched; running it again starts over (the
unfinished version is dropped first), so a half-written version is never resumed or served.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, Field
from tqdm import tqdm

from memstream.config import Settings
from memstream.consolidation.processor import JobOutcome, JobProcessor
from memstream.consolidation.windowing import WindowState, add_message, close_window, due_trigger
from memstream.embedder import Embedder
from memstream.llm import LLMClient
from memstream.rebuild.plan import ReplayPlan
from memstream.schemas import (
    AnyJob,
    ChatMessage,
    ConsolidationJob,
    ForgetJob,
    GenerationSwitch,
    MemoryEvent,
    MemoryEventType,
    MemoryNode,
    ReflectionJob,
    reflection_job_id,
    split_user_key,
    utcnow,
)
from memstream.sinks.base import MemoryStore, StoreVersion, VersionState, WriteResult
from memstream.streams.codec import CONTROL_HEADER, Rejected, decode_control, decode_message
from memstream.streams.events import (
    EVENT_HEADER,
    SWITCH,
    BadEvent,
    decode_event,
    event_record,
    generation_of,
    switch_record,
)
from memstream.streams.partitioning import partition_for
from memstream.streams.reader import LogReader, Record

log = logging.getLogger(__name__)

Source = Literal["events", "messages"]
#: Causes of events made by hand (management API): a rebuild from messages cannot re-derive
#: them, so it carries them over from the live history.
MANUAL_CAUSES = frozenset({"add", "delete"})


class LLMReport(BaseModel):
    calls: int = Field(description="New model calls (paid).")
    cached: int = Field(description="Answers served by the response cache (free).")
    tokens: int


class RebuildReport(BaseModel):
    """What ``memstream rebuild`` prints (JSON)."""

    source: Source
    reembed: bool
    version: int
    previous: int | None = Field(description="The version that was live before the switch.")
    dropped: list[int] = Field(description="Versions dropped: unfinished ones, and --drop-old.")
    restarted: bool = Field(description="An unfinished rebuild was found and started over.")
    records_read: int
    skipped_erased: int = Field(description="Records of forgotten users, skipped.")
    skipped_superseded: int = Field(description="Events of replaced generations, skipped.")
    invalid: int = Field(description="Records that do not decode (they are in the DLQ).")
    memories: int = Field(description="Memories in the new version when it was switched.")
    written: int
    deleted: int
    windows: int = 0
    windows_failed: int = 0
    windows_left_open: int = Field(0, description="Still open in the live worker; it writes them.")
    carried_over: int = Field(0, description="Manual and boundary events copied from live.")
    llm: LLMReport | None = None
    seconds: float = Field(description="All of it, the settle time after the switch included.")
    replay_seconds: float = Field(description="From the start to the switch.")
    memories_per_second: float = Field(description="Memories written per replay second.")


class Progress:
    """A progress bar with rate and ETA on stderr (or nothing)."""

    def __init__(self, enabled: bool, label: str, total: int | None, unit: str) -> None:
        self._bar = (
            tqdm(total=total, desc=label, unit=unit, unit_scale=True, file=sys.stderr)
            if enabled
            else None
        )

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class Rebuild:
    def __init__(
        self,
        settings: Settings,
        live: MemoryStore,
        embedder: Embedder,
        *,
        llm: LLMClient | None = None,
        reembed: bool = False,
        drop_old: bool = False,
        settle_seconds: float = 3.0,
        progress: bool = False,
    ) -> None:
        self._s = settings
        self._live = live
        self._embedder = embedder
        self._llm = llm
        self._reembed = reembed
        self._drop_old = drop_old
        self._settle = settle_seconds
        self._progress = progress
        self._dropped: list[int] = []
        self._switched = 0.0
        self._restarted = False
        self.plan = ReplayPlan()
        self.counts: dict[str, int] = {
            k: 0
            for k in (
                "records_read",
                "skipped_erased",
                "skipped_superseded",
                "invalid",
                "written",
                "deleted",
                "windows",
                "windows_failed",
                "carried_over",
            )
        }

    # -- the two sources -------------------------------------------------------------------

    async def from_events(self) -> RebuildReport:
        started = time.monotonic()
        await self._scan(self._s.kafka.memories_topic, events=True)
        live = await self._live_version()
        model: str | None
        if self._reembed:
            model, dims = self._embedder.model_id, self._embedder.dimensions
        else:
            model = live.embedding_model if live else self._embedder.model_id
            dims = (live.dimensions if live else None) or self._embedder.dimensions
        version = await self._new_version(
            "events+reembed" if self._reembed else "events", model, dims
        )
        async with self._live.at_version(version) as target:
            applier = EventApplier(
                target,
                self.plan,
                self.counts,
                embedder=self._embedder if self._reembed else None,
            )
            async with LogReader(self._s.kafka, self._s.kafka.memories_topic) as reader:
                total = sum((await reader.estimate_end()).values())
                bar = Progress(self._progress, f"rebuild v{version} from events", total, "ev")
                try:
                    async for batch in reader.read():
                        await applier.apply(batch)
                        bar.update(len(batch))
                    await self._catch_up(reader, applier.apply, bar)
                    await applier.flush()
                finally:
                    bar.close()
                previous = await self._go_live(version, target, reader, applier.apply)
            await applier.flush()
            memories = await target.count()
        return self._report("events", version, previous, memories, started)

    async def from_messages(self) -> RebuildReport:
        started = time.monotonic()
        await self._scan(self._s.kafka.memories_topic, events=True)
        await self._scan(self._s.kafka.messages_topic, events=False)
        version = await self._new_version(
            "messages", self._embedder.model_id, self._embedder.dimensions
        )
        usage_before = self._usage()
        async with (
            self._live.at_version(version) as target,
            EventPublisher(self._s, generation=version) as publisher,
        ):
            deriver = Deriver(
                self._s, target, self._embedder, self.plan, self.counts, publisher, self._llm
            )
            async with LogReader(self._s.kafka, self._s.kafka.messages_topic) as reader:
                total = sum((await reader.estimate_end()).values())
                bar = Progress(self._progress, f"rebuild v{version} from messages", total, "msg")
                try:
                    async for batch in reader.read():
                        await deriver.feed(batch)
                        bar.update(len(batch))
                    await self._catch_up(reader, deriver.feed, bar)
                    await deriver.finish()
                finally:
                    bar.close()
            # Manual changes, and windows the live worker has and the replay left open.
            carrier = Carrier(target, self.plan, self.counts, publisher, deriver.consolidated)
            async with LogReader(self._s.kafka, self._s.kafka.memories_topic) as events:
                async for batch in events.read():
                    await carrier.find_jobs(batch)
                async for batch in events.read():
                    await carrier.apply(batch)
                await carrier.flush()
                carrier.switching()
                previous = await self._go_live(
                    version, target, events, carrier.apply, after_switch=publisher.switch_markers
                )
                await carrier.flush()
            await publisher.flush()
            memories = await target.count()
        report = self._report("messages", version, previous, memories, started)
        if self._llm is not None:
            after = self._usage()
            report.llm = LLMReport(
                calls=after[0] - usage_before[0],
                cached=after[1] - usage_before[1],
                tokens=after[2] - usage_before[2],
            )
        report.windows_left_open = len(deriver.left_open)
        return report

    # -- shared steps ----------------------------------------------------------------------

    async def _scan(self, topic: str, *, events: bool) -> None:
        """First pass: headers only (values are decoded only for events from before headers
        existed), to learn erasures and switch markers."""
        async with LogReader(self._s.kafka, topic) as reader:
            total = sum((await reader.estimate_end()).values())
            bar = Progress(self._progress, f"scan {topic}", total, "rec")
            try:
                async for batch in reader.read():
                    for r in batch:
                        key = _key(r)
                        if events:
                            headers = r.headers
                            if EVENT_HEADER not in headers:
                                headers = {**headers, **_legacy_headers(r)}
                            self.plan.scan_event(r.partition, r.offset, key, headers)
                        else:
                            self.plan.scan_message(r.partition, r.offset, key, r.headers)
                    bar.update(len(batch))
            finally:
                bar.close()

    async def _live_version(self) -> StoreVersion | None:
        return next((v for v in await self._live.versions() if v.state is VersionState.live), None)

    async def _new_version(self, source: str, model: str | None, dims: int | None) -> int:
        for old in await self._live.versions():
            if old.state is VersionState.building:
                log.warning("dropping unfinished version %d (an interrupted rebuild)", old.version)
                await self._live.drop_version(old.version)
                self._dropped.append(old.version)
                self._restarted = True
        return await self._live.create_version(source, embedding_model=model, dimensions=dims)

    async def _catch_up(
        self,
        reader: LogReader,
        apply: Callable[[Sequence[Record]], Awaitable[None]],
        bar: Progress,
    ) -> None:
        """What arrived while the first pass ran, until a pass finds (almost) nothing new."""
        for _ in range(10):
            seen = 0
            async for batch in reader.read(await reader.positions()):
                await apply(batch)
                bar.update(len(batch))
                seen += len(batch)
            if seen < 100:
                return

    async def _go_live(
        self,
        version: int,
        target: MemoryStore,
        reader: LogReader,
        apply: Callable[[Sequence[Record]], Awaitable[None]],
        after_switch: Callable[[], Awaitable[None]] | None = None,
    ) -> int | None:
        """Switch, then keep applying the tail for ``settle_seconds``: writes a worker began
        against the old version just before the switch still reach the new one."""
        await target.refresh()
        self._switched = time.monotonic()
        previous = await self._live.switch_to(version)
        if after_switch is not None:
            await after_switch()
        deadline = time.monotonic() + self._settle
        while True:
            async for batch in reader.read(await reader.positions()):
                await apply(batch)
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        if self._drop_old and previous is not None:
            await self._live.drop_version(previous)
            self._dropped.append(previous)
        return previous

    def _usage(self) -> tuple[int, int, int]:
        if self._llm is None:
            return (0, 0, 0)
        usage = self._llm.usage
        tokens = sum(usage.prompt_tokens.values()) + sum(usage.completion_tokens.values())
        return sum(usage.calls.values()), sum(usage.cached.values()), tokens

    def _report(
        self, source: Source, version: int, previous: int | None, memories: int, started: float
    ) -> RebuildReport:
        seconds = time.monotonic() - started
        replay = (self._switched or time.monotonic()) - started
        c = self.counts
        return RebuildReport(
            source=source,
            reembed=self._reembed,
            version=version,
            previous=previous,
            dropped=self._dropped,
            restarted=self._restarted,
            records_read=c["records_read"],
            skipped_erased=c["skipped_erased"],
            skipped_superseded=c["skipped_superseded"],
            invalid=c["invalid"],
            memories=memories,
            written=c["written"],
            deleted=c["deleted"],
            windows=c["windows"],
            windows_failed=c["windows_failed"],
            carried_over=c["carried_over"],
            seconds=round(seconds, 3),
            replay_seconds=round(replay, 3),
            memories_per_second=round(c["written"] / replay, 1) if replay > 0 else 0.0,
        )


class EventApplier:
    """Applies memory events, in log order, to the version being built. Upserts are batched
    (and deduplicated to the highest version); a delete or erasure flushes first, so order is
    kept where it matters."""

    def __init__(
        self,
        store: MemoryStore,
        plan: ReplayPlan,
        counts: dict[str, int],
        *,
        embedder: Embedder | None = None,
        batch: int = 2000,
    ) -> None:
        self._store = store
        self._plan = plan
        self._counts = counts
        self._embedder = embedder
        self._batch = batch
        self._pending: dict[str, MemoryNode] = {}
        self._writing: asyncio.Future[WriteResult] | None = None

    async def apply(self, records: Sequence[Record]) -> None:
        for r in records:
            self._counts["records_read"] += 1
            event = self.admit(r)
            if event is not None:
                await self.apply_event(event)

    def admit(self, r: Record) -> MemoryEvent | None:
        """The event, if the replay keeps it (counted either way)."""
        key = _key(r)
        if r.headers.get(EVENT_HEADER) == SWITCH:
            return None
        if self._plan.erased_event(r.partition, r.offset, key):
            self._counts["skipped_erased"] += 1
            return None
        try:
            decoded = decode_event(r.value, r.headers)
        except BadEvent as exc:
            log.warning("event %d@%d skipped: %s", r.offset, r.partition, exc)
            self._counts["invalid"] += 1
            return None
        if not isinstance(decoded, MemoryEvent):
            return None
        generation = generation_of(r.headers) if EVENT_HEADER in r.headers else decoded.generation
        if decoded.event_type is not MemoryEventType.forget and not self._plan.in_lineage(
            r.partition, r.offset, generation
        ):
            self._counts["skipped_superseded"] += 1
            return None
        return decoded

    async def apply_event(self, event: MemoryEvent) -> None:
        if event.event_type is MemoryEventType.upsert and event.memory is not None:
            node = event.memory
            held = self._pending.get(node.memory_id)
            if held is None or held.version < node.version:
                self._pending[node.memory_id] = node
            if len(self._pending) >= self._batch:
                await self._write_pending()
            return
        await self.flush()
        # A delete names its memory; an erasure the first pass had not seen (it came during
        # the rebuild) covers the user.
        ids = [event.memory_id] if event.event_type is MemoryEventType.delete else None
        self._counts["deleted"] += len(await self._store.delete(event.owner_id, event.user_id, ids))

    async def flush(self) -> None:
        """Write what is pending, and wait for every write."""
        await self._write_pending()
        await self._settle_write()

    async def _write_pending(self) -> None:
        """Start writing the pending batch; the previous batch's write must finish first
        (order), but decoding the next batch overlaps this one's write."""
        if not self._pending:
            return
        nodes = list(self._pending.values())
        self._pending.clear()
        if self._embedder is not None:
            embedder = self._embedder
            vectors = await asyncio.to_thread(embedder.embed, [n.content for n in nodes])
            for node, vector in zip(nodes, vectors, strict=True):
                node.vector = vector.tolist()
                node.embedding_model = embedder.model_id
        await self._settle_write()
        self._writing = asyncio.ensure_future(self._store.upsert(nodes))

    async def _settle_write(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self._counts["written"] += len((await writing).applied)


class EventPublisher:
    """Publishes the rebuild's events, tagged with its generation, and the switch markers."""

    def __init__(self, settings: Settings, *, generation: int) -> None:
        self._kafka = settings.kafka
        self.generation = generation
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            acks="all",
            linger_ms=20,  # uncompressed like the workers' events: vectors barely compress
            max_request_size=4 * 1024 * 1024,
        )
        self._inflight: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> EventPublisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    async def publish(self, event: MemoryEvent) -> None:
        event.generation = self.generation
        key, value, headers = event_record(event)
        self._inflight.append(
            await self._producer.send(
                self._kafka.memories_topic, value=value, key=key, headers=headers
            )
        )
        if len(self._inflight) >= 1000:
            await self.flush()

    async def flush(self) -> None:
        pending, self._inflight = self._inflight, []
        if pending:
            await asyncio.gather(*pending)

    async def switch_markers(self) -> None:
        """One marker per partition, after every tagged event of the generation."""
        await self.flush()
        value, headers = switch_record(GenerationSwitch(generation=self.generation))
        partitions = await self._producer.partitions_for(self._kafka.memories_topic)
        for partition in sorted(partitions):
            await self._producer.send_and_wait(
                self._kafka.memories_topic, value=value, partition=partition, headers=headers
            )


class Deriver:
    """Re-forms each user's windows from the messages (event-time rules, as the live worker
    cuts them) and consolidates them with the worker's own :class:`JobProcessor`."""

    def __init__(
        self,
        settings: Settings,
        store: MemoryStore,
        embedder: Embedder,
        plan: ReplayPlan,
        counts: dict[str, int],
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
        self._batch = 32 if llm is not None else 512
        self.left_open: dict[str, WindowState] = {}
        #: Message ids of the windows this replay consolidated itself.
        self.consolidated: set[str] = set()

    async def feed(self, records: Sequence[Record]) -> None:
        partitions = self._s.kafka.partitions
        skew = timedelta(seconds=self._s.window.max_future_skew_seconds)
        for r in records:
            self._counts["records_read"] += 1
            key = _key(r)
            control = r.headers.get(CONTROL_HEADER)
            if self._plan.erased_message(r.partition, r.offset, key):
                self._counts["skipped_erased"] += 1
                continue
            arrived = datetime.fromtimestamp(r.timestamp_ms / 1000, tz=UTC)
            decoded: ChatMessage | ForgetJob | Rejected
            if control is not None:
                decoded = decode_control(r.key, r.value, control)
            else:  # judged against its arrival, as the worker judged it then
                decoded = decode_message(
                    r.key,
                    r.value,
                    max_bytes=self._s.kafka.max_message_bytes,
                    now=arrived,
                    max_future_skew=skew,
                )
            if isinstance(decoded, Rejected):
                self._counts["invalid"] += 1
                continue
            user = decoded.key
            if partition_for(user.encode(), partitions) != r.partition:
                continue  # the worker re-routed it: the copy on its home partition counts
            if isinstance(decoded, ForgetJob):  # came after the first pass
                await self._run()
                self._windows.pop(user, None)
                self._touched.discard(user)
                await self._run_one(decoded)
                continue
            state = self._windows.get(user, WindowState())
            state, jobs = add_message(state, decoded, arrived, self._s.window)
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
        for _ in range(50):  # rounds of max_observations each
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
                self._counts["windows"] += 1
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
            self._counts["windows_failed"] += 1
            log.warning("job %s failed: %s %s", outcome.job_id, outcome.failure, outcome.detail)
        self._counts["written"] += outcome.applied


class Carrier:
    """Copies into a version derived from messages what the messages did not give it:
    changes made by hand (adds, deletes, erasures), and what the live worker made of
    messages the replay did not consolidate itself (windows it left open to the worker, and
    messages that arrived after it had read the topic). A job is copied whole: the new
    memory and the older one it expired go together. Everything copied is published again
    under the new generation."""

    def __init__(
        self,
        store: MemoryStore,
        plan: ReplayPlan,
        counts: dict[str, int],
        publisher: EventPublisher,
        consolidated: set[str],
    ) -> None:
        # Its own tallies: what it skips on the events topic is not what the rebuild read.
        self._applier = EventApplier(store, plan, Counter())
        self._counts = counts
        self._publisher = publisher
        self._consolidated = consolidated
        self._jobs: set[str] = set()
        self._switched_at: datetime | None = None

    def _live_only(self, event: MemoryEvent) -> bool:
        """An event of the live worker about messages this replay did not consolidate."""
        node = event.memory
        return (
            event.cause == "consolidate"
            and node is not None
            and not self._consolidated.issuperset(node.source_message_ids)
        )

    def _wanted(self, event: MemoryEvent) -> bool:
        if event.generation == self._publisher.generation:
            return False  # this rebuild's own events
        if event.cause in MANUAL_CAUSES or event.event_type is MemoryEventType.forget:
            return True
        if self._switched_at is not None and event.produced_at >= self._switched_at:
            return True  # written by a worker into the new version after the switch
        if event.job_id is not None and event.job_id in self._jobs:
            return True
        if self._live_only(event):
            if event.job_id is not None:
                self._jobs.add(event.job_id)
            return True
        return False

    async def find_jobs(self, records: Sequence[Record]) -> None:
        """First pass: the jobs to copy whole (their events may come in any order)."""
        for r in records:
            event = self._applier.admit(r)
            if event is not None and event.job_id is not None and self._live_only(event):
                self._jobs.add(event.job_id)

    async def apply(self, records: Sequence[Record]) -> None:
        for r in records:
            event = self._applier.admit(r)
            if event is None or not self._wanted(event):
                continue
            self._counts["carried_over"] += 1
            await self._applier.apply_event(event)
            await self._publisher.publish(event.model_copy())

    def switching(self) -> None:
        """From now on every worker event is carried over: a write that began just before
        the switch went to the old version, and its event comes after."""
        self._switched_at = utcnow()

    async def flush(self) -> None:
        await self._applier.flush()


def _key(r: Record) -> str:
    return (r.key or b"").decode("utf-8", "replace")


def _legacy_headers(r: Record) -> dict[str, str]:
    try:
        decoded = decode_event(r.value, {})
    except BadEvent:
        return {}
    if isinstance(decoded, MemoryEvent):
        return {EVENT_HEADER: decoded.event_type.value}
    return {}


async def run_rebuild(
    settings: Settings,
    source: Source,
    *,
    reembed: bool = False,
    drop_old: bool = False,
    settle_seconds: float = 3.0,
    progress: bool = False,
) -> RebuildReport:
    """``memstream rebuild``: open what the settings name, rebuild, switch, close."""
    from memstream.embedder import load_embedder
    from memstream.llm import load_llm
    from memstream.sinks import open_store

    if reembed and source != "events":
        raise ValueError("--reembed goes with --from events (a rebuild from messages embeds anew)")
    embedder = load_embedder(settings.embedder)
    llm = load_llm(settings.llm) if source == "messages" else None
    try:
        async with open_store(settings.store, dimensions=embedder.dimensions) as live:
            rebuild = Rebuild(
                settings,
                live,
                embedder,
                llm=llm,
                reembed=reembed,
                drop_old=drop_old,
                settle_seconds=settle_seconds,
                progress=progress,
            )
            if source == "events":
                return await rebuild.from_events()
            return await rebuild.from_messages()
    finally:
        if llm is not None:
            await llm.close()
