"""Acks leave a partition only from its head, in offset order (no servers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from memstream.worker.acks import AckLedger, hold_batch
from tests.support.events import events


def test_held_head_blocks_later_acks_until_released() -> None:
    log: list[tuple[int, int]] = []
    ledger = AckLedger()
    evs = events(0, range(5), log)
    for e in evs:
        ledger.track(e)
    assert all(e.message.refcount == 2 for e in evs)
    for e in evs[1:]:
        assert ledger.release(e) == 0  # offset 0 (an open window's message) is still held
    assert log == [] and ledger.pending(0) == 5 and ledger.oldest_held_offset(0) == 0
    assert ledger.release(evs[0]) == 5
    assert log == [(0, o) for o in range(5)] and ledger.pending() == 0


def test_partitions_are_independent_and_release_is_idempotent() -> None:
    log: list[tuple[int, int]] = []
    ledger = AckLedger()
    a, b = events(0, range(2), log), events(1, range(2), log)
    for e in [*a, *b]:
        ledger.track(e)
    ledger.track(a[0])  # tracking twice does not take a second reference
    assert a[0].message.refcount == 2
    assert ledger.release(b[0]) == 1 and ledger.release(b[0]) == 0
    assert ledger.release(a[1]) == 0 and ledger.pending(0) == 2
    assert ledger.release(a[0]) == 2
    assert log == [(1, 0), (0, 0), (0, 1)]


def test_forget_drops_revoked_partitions_without_acking() -> None:
    log: list[tuple[int, int]] = []
    ledger = AckLedger()
    evs = events(3, range(3), log)
    for e in evs:
        ledger.track(e)
    ledger.forget({3})
    assert ledger.pending() == 0 and ledger.release(evs[0]) == 0 and log == []


def finish_take_events(batch: list[Any]) -> list[bool]:
    """What Faust's ``take_events`` does when the loop body is left, however it is left."""
    return [event.ack() for event in batch]


def test_a_batch_finished_normally_is_acknowledged_by_faust() -> None:
    log: list[tuple[int, int]] = []
    batch = events(0, range(3), log)
    with hold_batch(batch):
        pass
    assert finish_take_events(batch) == [True, True, True]


def test_a_batch_cut_short_stays_unacknowledged() -> None:
    """A graceful stop cancels the agent mid-batch; Faust still acks the batch on the way out,
    which must not commit records the agent never handled."""
    log: list[tuple[int, int]] = []
    batch = events(0, range(3), log)
    with pytest.raises(asyncio.CancelledError), hold_batch(batch):
        raise asyncio.CancelledError
    assert finish_take_events(batch) == [False, False, False]
    assert all(event.message.refcount == 1 for event in batch)


def test_a_held_batch_and_the_ledger_both_must_let_go() -> None:
    log: list[tuple[int, int]] = []
    batch = events(0, range(2), log)
    ledger = AckLedger()
    with hold_batch(batch):
        for event in batch:
            ledger.track(event)
        ledger.release(batch[0])  # handled; batch[1] stays in an open window
    assert finish_take_events(batch) == [True, False]
    assert ledger.release(batch[1]) == 1 and batch[1].message.refcount == 0
