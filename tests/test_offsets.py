"""Noticing undelivered records (no servers)."""

from __future__ import annotations

from memstream.worker.offsets import OffsetTracker


def run(tracker: OffsetTracker, offsets: list[int], partition: int = 0) -> list[str]:
    return [tracker.check(partition, o).value for o in offsets]


def test_contiguous_records_are_processed() -> None:
    t = OffsetTracker()
    t.start(0, 125)
    assert run(t, [125, 126, 127]) == ["process"] * 3
    assert t.expected(0) == 128


def test_head_gap_seeks_back_and_skips_until_the_missing_record_arrives() -> None:
    t = OffsetTracker()
    t.start(0, 125)  # committed offset
    # Faust dropped 125..129; buffered 130..132 arrive first, then the re-fetch from 125.
    assert run(t, [130, 131, 132]) == ["seek", "skip", "skip"]
    assert run(t, list(range(125, 133))) == ["process"] * 8
    assert t.expected(0) == 133


def test_redelivered_records_are_duplicates() -> None:
    t = OffsetTracker()
    t.start(0, 10)
    run(t, [10, 11, 12])
    assert run(t, [11, 12, 13]) == ["duplicate", "duplicate", "process"]


def test_offsets_that_do_not_exist_are_accepted_after_one_refetch() -> None:
    t = OffsetTracker()
    t.start(0, 10)
    # 11 is a transaction marker: never delivered, also not after the seek.
    assert run(t, [10, 12, 13]) == ["process", "seek", "skip"]
    assert run(t, [12, 13, 14]) == ["process", "process", "process"]


def test_partitions_are_independent_and_forgettable() -> None:
    t = OffsetTracker()
    t.start(0, 0)
    t.start(1, 5)
    assert run(t, [0], 0) == ["process"] and run(t, [5], 1) == ["process"]
    t.forget({1})
    assert not t.knows(1) and t.knows(0)
