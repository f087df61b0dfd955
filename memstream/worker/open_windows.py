"""The open windows of the partitions a worker owns, and the records each holds back.

Bookkeeping only, no Faust and no I/O, so it is tested on its own: the ingest agent decodes,
routes and sends; this decides. A message's record stays unacknowledged while the window
holding it is open, and is released once that window's job is in the producer (Faust flushes
the producer before it commits). Acks leave each partition in offset order
(:class:`AckLedger`), so after a crash or a rebalance every message of an open window is
read again and its window rebuilt: the log is the window's durable copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from memstream.config import WindowSettings
from memstream.consolidation.windowing import (
    WindowState,
    add_message,
    advance_after,
    close_window,
    due_trigger,
    next_window,
)
from memstream.schemas import ChatMessage, ConsolidationJob, WindowTrigger
from memstream.streams.partitioning import partition_for
from memstream.worker.acks import AckableEvent, AckLedger

#: A message of this batch and the event it came in.
Item = tuple[ChatMessage, Any]


class OpenWindows:
    def __init__(self, rules: WindowSettings, partitions: int) -> None:
        self.rules = rules
        self.partitions = partitions
        self.ledger = AckLedger()
        #: key -> the user's open window.
        self._windows: dict[bytes, WindowState] = {}
        #: key -> message id -> the event holding back the record of a message in that window.
        self._held: dict[bytes, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def state(self, key: bytes) -> WindowState:
        found = self._windows.get(key)
        return WindowState() if found is None else found

    def track(self, event: AckableEvent) -> None:
        """Every admitted record is acknowledged through the ledger, held or not."""
        self.ledger.track(event)

    def done(self, event: AckableEvent) -> None:
        """A record with nothing to hold (dead-lettered, re-routed, a control)."""
        self.ledger.release(event)

    # -- ingest ----------------------------------------------------------------------------

    def add(
        self, key: bytes, message: ChatMessage, raw: bytes, now: datetime
    ) -> list[ConsolidationJob]:
        """Add a message to its user's window; the jobs of windows it closed, to be sent and
        then passed to :meth:`emitted`. ``raw`` is what the message was validated from."""
        state, jobs = add_message(self.state(key), message, now, self.rules, raw)
        self._keep(key, state)
        return jobs

    def hold(self, key: bytes, items: Sequence[Item]) -> None:
        """After a batch's messages of one user were added (and their closed windows sent):
        hold the records of messages still in the open window, release all the others."""
        state = self.state(key)
        mine = self._held.setdefault(key, {})
        for message, event in items:  # the first delivery of a message holds it
            if state.has(message.message_id) and message.message_id not in mine:
                mine[message.message_id] = event
        for message, event in items:  # O(batch), not O(window): windows can be long
            if mine.get(message.message_id) is not event:
                self.ledger.release(event)
        if not mine:
            del self._held[key]

    def emitted(self, key: bytes, job: ConsolidationJob) -> None:
        """``job`` is in the producer: the records of its messages may be acknowledged."""
        mine = self._held.get(key)
        if not mine:
            return
        for message in job.messages:
            event = mine.pop(message.message_id, None)
            if event is not None:
                self.ledger.release(event)
        if not mine:
            del self._held[key]

    def erase(self, key: bytes, items: Sequence[Item], forget: AckableEvent) -> None:
        """A forget in the user's stream: the open window is dropped, its records (and this
        batch's, and the forget's own) acknowledged unconsolidated."""
        for event in self._held.pop(key, {}).values():
            self.ledger.release(event)
        for _, event in items:
            self.ledger.release(event)
        self.ledger.release(forget)
        self._keep(key, next_window(self.state(key)))

    # -- closing by the clock, and at shutdown ---------------------------------------------

    def close_due(self, now: datetime) -> Iterator[tuple[bytes, ConsolidationJob]]:
        """Jobs of windows idle or old by the wall clock, each judged when it is reached (the
        caller sends one before the next is judged). A window stays open until its job was
        sent and passed to :meth:`closed`: a crash in between re-emits the same job
        (idempotent) rather than losing it."""
        for key in list(self._windows):
            state = self.state(key)
            trigger = due_trigger(state, now, self.rules)
            if trigger is not None:
                yield key, close_window(state, trigger, now)

    def drain(self, now: datetime) -> list[tuple[bytes, ConsolidationJob]]:
        """Jobs of every open window (graceful shutdown); pass each to :meth:`closed` once
        consolidated."""
        return [
            (key, close_window(state, WindowTrigger.shutdown, now))
            for key, state in list(self._windows.items())
            if not state.is_empty
        ]

    def closed(self, key: bytes, job: ConsolidationJob) -> None:
        """A job from :meth:`close_due` or :meth:`drain` was sent: its window moves on (what
        arrived since stays open) and its records may be acknowledged."""
        self._keep(key, advance_after(self.state(key), job))
        self.emitted(key, job)

    # -- rebalance -------------------------------------------------------------------------

    def revoke(self, partitions: set[int]) -> None:
        """Partitions went to another worker, which re-reads these messages from the last
        commit: drop their windows and acknowledge nothing."""
        self.ledger.forget(partitions)
        for key in [k for k in self._held if partition_for(k, self.partitions) in partitions]:
            del self._held[key]
        for key in [k for k in self._windows if partition_for(k, self.partitions) in partitions]:
            del self._windows[key]

    def pending(self) -> int:
        """Records not yet acknowledged (a gauge)."""
        return self.ledger.pending()

    def _keep(self, key: bytes, state: WindowState) -> None:
        if state.is_empty:
            self._windows.pop(key, None)
        else:
            self._windows[key] = state
