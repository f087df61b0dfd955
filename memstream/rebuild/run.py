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
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.llm import LLMClient
from memstream.rebuild.carry import Carrier
from memstream.rebuild.events import EventApplier, legacy_headers, record_key
from memstream.rebuild.messages import Deriver
from memstream.rebuild.plan import ReplayPlan
from memstream.rebuild.report import LLMReport, Progress, RebuildCounts, RebuildReport, Source
from memstream.sinks.base import MemoryStore, StoreVersion, VersionState
from memstream.streams.events import EVENT_HEADER
from memstream.streams.producer import EventPublisher
from memstream.streams.reader import LogReader, Record

log = logging.getLogger(__name__)

#: Catch-up passes over the tail before the switch, at most; a pass that finds fewer than
#: ``CAUGHT_UP_BELOW`` new records ends them (the rest is applied after the switch).
CATCH_UP_PASSES = 10
CAUGHT_UP_BELOW = 100
#: How often the tail is read again while a switch settles.
SETTLE_POLL_SECONDS = 0.2

Apply = Callable[[Sequence[Record]], Awaitable[None]]


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
        self.counts = RebuildCounts()

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
                await self._replay(reader, f"rebuild v{version} from events", "ev", applier.apply)
                await applier.flush()
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
            EventPublisher(self._s.kafka, generation=version) as publisher,
        ):
            deriver = Deriver(
                self._s, target, self._embedder, self.plan, self.counts, publisher, self._llm
            )
            async with LogReader(self._s.kafka, self._s.kafka.messages_topic) as reader:
                await self._replay(reader, f"rebuild v{version} from messages", "msg", deriver.feed)
                await deriver.finish()
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

        async def scan(batch: Sequence[Record]) -> None:
            for r in batch:
                key = record_key(r)
                if events:
                    headers = r.headers
                    if EVENT_HEADER not in headers:
                        headers = {**headers, **legacy_headers(r)}
                    self.plan.scan_event(r.partition, r.offset, key, headers)
                else:
                    self.plan.scan_message(r.partition, r.offset, key, r.headers)

        async with LogReader(self._s.kafka, topic) as reader:
            await self._replay(reader, f"scan {topic}", "rec", scan, catch_up=False)

    async def _replay(
        self, reader: LogReader, label: str, unit: str, apply: Apply, *, catch_up: bool = True
    ) -> None:
        """Read the topic from the start to its end through ``apply``, with a progress bar;
        then (``catch_up``) what arrived meanwhile, until a pass finds (almost) nothing new."""
        bar = Progress(self._progress, label, sum((await reader.estimate_end()).values()), unit)
        try:
            async for batch in reader.read():
                await apply(batch)
                bar.update(len(batch))
            if not catch_up:
                return
            for _ in range(CATCH_UP_PASSES):
                seen = 0
                async for batch in reader.read(await reader.positions()):
                    await apply(batch)
                    bar.update(len(batch))
                    seen += len(batch)
                if seen < CAUGHT_UP_BELOW:
                    return
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

    async def _go_live(
        self,
        version: int,
        target: MemoryStore,
        reader: LogReader,
        apply: Apply,
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
            await asyncio.sleep(SETTLE_POLL_SECONDS)
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
            memories=memories,
            **asdict(c),
            seconds=round(seconds, 3),
            replay_seconds=round(replay, 3),
            memories_per_second=round(c.written / replay, 1) if replay > 0 else 0.0,
        )


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
