"""What a rebuild from messages copies over from the live history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memstream.rebuild.events import EventApplier
from memstream.rebuild.plan import ReplayPlan
from memstream.rebuild.report import RebuildCounts
from memstream.schemas import MemoryEvent, MemoryEventType, utcnow
from memstream.sinks.base import MemoryStore
from memstream.streams.producer import EventPublisher
from memstream.streams.reader import Record

#: Causes of events made by hand (management API): a rebuild from messages cannot re-derive
#: them, so it carries them over from the live history.
MANUAL_CAUSES = frozenset({"add", "delete"})


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
        counts: RebuildCounts,
        publisher: EventPublisher,
        consolidated: set[str],
    ) -> None:
        # Its own tallies: what it skips on the events topic is not what the rebuild read.
        self._applier = EventApplier(store, plan, RebuildCounts())
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
            self._counts.carried_over += 1
            await self._applier.apply_event(event)
            await self._publisher.publish(event.model_copy())

    def switching(self) -> None:
        """From now on every worker event is carried over: a write that began just before
        the switch went to the old version, and its event comes after."""
        self._switched_at = utcnow()

    async def flush(self) -> None:
        await self._applier.flush()
