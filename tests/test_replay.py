"""The replay rules (pure): erasure by the last forget, lineage by the last switch marker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from memstream.embedder import Embedder
from memstream.rebuild.plan import ReplayPlan
from memstream.streams.codec import CONTROL_HEADER
from memstream.streams.events import EVENT_HEADER, GENERATION_HEADER

UPSERT = {EVENT_HEADER: "upsert"}
FORGET = {EVENT_HEADER: "forget"}


def switch(generation: int) -> dict[str, str]:
    return {EVENT_HEADER: "switch", GENERATION_HEADER: str(generation)}


def test_a_user_is_skipped_up_to_the_last_forget_only() -> None:
    plan = ReplayPlan()
    plan.scan_event(0, 5, "acme/erin", FORGET)
    plan.scan_event(0, 9, "acme/erin", FORGET)  # forgotten twice: the last counts
    plan.scan_event(0, 7, "acme/bob", UPSERT)
    assert plan.erased_event(0, 3, "acme/erin") and plan.erased_event(0, 9, "acme/erin")
    assert not plan.erased_event(0, 10, "acme/erin"), "what she said afterwards is kept"
    assert not plan.erased_event(0, 3, "acme/bob")
    assert not plan.erased_event(1, 3, "acme/erin"), "another partition: not her history"


def test_forget_controls_on_the_messages_topic() -> None:
    plan = ReplayPlan()
    plan.scan_message(2, 40, "acme/erin", {CONTROL_HEADER: "forget"})
    plan.scan_message(2, 41, "acme/bob", {"content-type": "application/json"})
    assert plan.erased_message(2, 39, "acme/erin") and not plan.erased_message(2, 41, "acme/erin")
    assert not plan.erased_message(2, 1, "acme/bob")
    assert plan.erased_events == {}, "the two topics' offsets are never mixed"


@pytest.mark.parametrize(
    ("partition", "offset", "generation", "kept"),
    [
        (0, 5, None, False),  # untagged before the marker: replaced by generation 3
        (0, 4, 3, True),  # generation 3, written by the rebuild before its marker
        (0, 12, 3, True),  # ... or carried over after it
        (0, 6, 2, False),  # an abandoned rebuild's generation
        (0, 11, None, True),  # a worker's write after the switch
        (1, 5, None, True),  # partition 1 has no marker: untagged is the lineage
        (1, 6, 3, False),  # ... and tagged events there never went live
    ],
)
def test_lineage_follows_the_last_switch_marker(
    partition: int, offset: int, generation: int | None, kept: bool
) -> None:
    plan = ReplayPlan()
    plan.scan_event(0, 2, "", switch(1))
    plan.scan_event(0, 10, "", switch(3))
    assert plan.switches == {0: (10, 3)} and plan.live_generation == 3
    assert plan.in_lineage(partition, offset, generation) is kept


def test_an_older_marker_seen_later_does_not_win() -> None:
    plan = ReplayPlan()
    plan.scan_event(0, 10, "", switch(3))
    plan.scan_event(0, 2, "", switch(1))
    assert plan.switches == {0: (10, 3)}


async def test_the_carrier_copies_live_only_jobs_whole(tmp_path: Path, embedder: Embedder) -> None:
    """What a rebuild from messages copies from the live history: a job about a message it
    did not consolidate (with the older memory that job expired, even when that event comes
    first), and changes made by hand; not what it derived itself, nor its own events."""
    from memstream.rebuild.carry import Carrier
    from memstream.rebuild.report import RebuildCounts
    from memstream.schemas import MemoryEvent, StoreStatus
    from memstream.sinks.base import MemoryFilter
    from memstream.sinks.sqlite import SQLiteStore
    from memstream.streams.events import event_record
    from memstream.streams.reader import Record
    from tests.support.memories import observation

    t = datetime(2024, 5, 1, tzinfo=UTC)
    alibaba = observation(embedder, "I work at Alibaba.", t, "m1", mid="alibaba")
    expired = alibaba.model_copy(
        update={"store_status": StoreStatus.expired, "valid_to": t, "version": 2}
    )
    meituan = observation(embedder, "I just joined Meituan.", t, "m9", mid="meituan")
    manual = observation(embedder, "Alice is vegetarian.", t, "hand", mid="manual")
    own = observation(embedder, "Derived again.", t, "m1", mid="own")
    events = [
        MemoryEvent.upsert(alibaba, "job-1", "consolidate"),  # derived by the rebuild too
        MemoryEvent.upsert(expired, "job-9", "consolidate"),  # job 9: about m9, not derived
        MemoryEvent.upsert(meituan, "job-9", "consolidate"),
        MemoryEvent.upsert(manual, "add-1", "add"),
        MemoryEvent.upsert(own, "job-1", "consolidate").model_copy(update={"generation": 2}),
    ]
    records = []
    for offset, event in enumerate(events):
        key, value, headers = event_record(event)
        records.append(Record(0, offset, key, value, dict((k, v.decode()) for k, v in headers), 0))

    class Published:
        generation = 2

        def __init__(self) -> None:
            self.events: list[MemoryEvent] = []

        async def publish(self, event: MemoryEvent) -> None:
            self.events.append(event)

    published = Published()
    counts = RebuildCounts()
    async with SQLiteStore(tmp_path / "c.db") as store:
        carrier = Carrier(store, ReplayPlan(), counts, published, {"m1"})  # type: ignore[arg-type]
        await carrier.find_jobs(records)
        await carrier.apply(records)
        await carrier.flush()
        kept = {
            n.memory_id: n.store_status
            for n in await store.list_memories(
                "demo", "alice", MemoryFilter(statuses=tuple(StoreStatus))
            )
        }
    assert kept == {"alibaba": StoreStatus.expired, "meituan": StoreStatus.valid, "manual": "valid"}
    assert [e.memory_id for e in published.events] == ["alibaba", "meituan", "manual"]
    assert counts.carried_over == 3
