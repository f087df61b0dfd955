"""Memory events → the version being built, in log order (what a rebuild from events does,
and what a rebuild from messages copies over from live)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from memstream.embedder import Embedder
from memstream.rebuild.plan import ReplayPlan
from memstream.rebuild.report import RebuildCounts
from memstream.schemas import MemoryEvent, MemoryEventType, MemoryNode
from memstream.sinks.base import MemoryStore, WriteResult
from memstream.streams.events import EVENT_HEADER, SWITCH, BadEvent, decode_event, generation_of
from memstream.streams.reader import Record

log = logging.getLogger(__name__)

#: Upserts written to the store per batch.
UPSERT_BATCH = 2000


def record_key(r: Record) -> str:
    return (r.key or b"").decode("utf-8", "replace")


def legacy_headers(r: Record) -> dict[str, str]:
    """The event header of an event written before events carried headers."""
    try:
        decoded = decode_event(r.value, {})
    except BadEvent:
        return {}
    if isinstance(decoded, MemoryEvent):
        return {EVENT_HEADER: decoded.event_type.value}
    return {}


class EventApplier:
    """Applies memory events, in log order, to the version being built. Upserts are batched
    (and deduplicated to the highest version); a delete or erasure flushes first, so order is
    kept where it matters."""

    def __init__(
        self,
        store: MemoryStore,
        plan: ReplayPlan,
        counts: RebuildCounts,
        *,
        embedder: Embedder | None = None,
        batch: int = UPSERT_BATCH,
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
            self._counts.records_read += 1
            event = self.admit(r)
            if event is not None:
                await self.apply_event(event)

    def admit(self, r: Record) -> MemoryEvent | None:
        """The event, if the replay keeps it (counted either way)."""
        key = record_key(r)
        if r.headers.get(EVENT_HEADER) == SWITCH:
            return None
        if self._plan.erased_event(r.partition, r.offset, key):
            self._counts.skipped_erased += 1
            return None
        try:
            decoded = decode_event(r.value, r.headers)
        except BadEvent as exc:
            log.warning("event %d@%d skipped: %s", r.offset, r.partition, exc)
            self._counts.invalid += 1
            return None
        if not isinstance(decoded, MemoryEvent):
            return None
        generation = generation_of(r.headers) if EVENT_HEADER in r.headers else decoded.generation
        if decoded.event_type is not MemoryEventType.forget and not self._plan.in_lineage(
            r.partition, r.offset, generation
        ):
            self._counts.skipped_superseded += 1
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
        self._counts.deleted += len(await self._store.delete(event.owner_id, event.user_id, ids))

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
            await asyncio.to_thread(self._embedder.index, nodes, force=True)
        await self._settle_write()
        self._writing = asyncio.ensure_future(self._store.upsert(nodes))

    async def _settle_write(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self._counts.written += len((await writing).applied)
