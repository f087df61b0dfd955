"""The ingest agent's state without Faust: open windows, held records, acks in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from memstream.config import WindowSettings
from memstream.schemas import ChatMessage, WindowTrigger
from memstream.streams.partitioning import partition_for
from memstream.worker.open_windows import OpenWindows
from tests.support.events import FakeEvent, FakeMessage

T0 = datetime(2024, 7, 10, 9, 0, tzinfo=UTC)
RULES = WindowSettings(max_messages=3, max_tokens=1000, idle_seconds=60, max_age_seconds=600)
PARTITIONS = 4


def message(user: str, i: int) -> ChatMessage:
    return ChatMessage(
        message_id=f"{user}-{i}",
        owner_id="o",
        user_id=user,
        role="user",
        content=f"I like tea number {i}",
        sent_at=T0 + timedelta(seconds=i),
    )


def key(user: str) -> bytes:
    return f"o/{user}".encode()


class Feed:
    """Delivers a user's messages as the agent does: track, add (send what closes), hold."""

    def __init__(self, windows: OpenWindows) -> None:
        self.windows = windows
        self.offsets: dict[int, int] = {}
        self.acked: list[tuple[int, int]] = []
        self.sent: list[Any] = []

    def event(self, k: bytes) -> FakeEvent:
        partition = partition_for(k, PARTITIONS)
        offset = self.offsets.get(partition, 0)
        self.offsets[partition] = offset + 1
        return FakeEvent(FakeMessage(partition, offset), self.acked)

    def batch(self, user: str, numbers: range) -> list[FakeEvent]:
        k, items, evs = key(user), [], []
        for i in numbers:
            m, ev = message(user, i), self.event(k)
            self.windows.track(ev)
            for job in self.windows.add(k, m, m.model_dump_json().encode(), T0):
                self.sent.append(job)
                self.windows.emitted(k, job)
            items.append((m, ev))
            evs.append(ev)
        self.windows.hold(k, items)
        return evs


def test_records_of_an_open_window_are_held_until_its_job_is_sent() -> None:
    windows = OpenWindows(RULES, PARTITIONS)
    feed = Feed(windows)
    feed.batch("ann", range(2))
    assert feed.acked == [] and windows.pending() == 2 and len(windows) == 1
    feed.batch("ann", range(2, 4))  # the third message closes the window (max_messages)
    [job] = feed.sent
    assert [m.message_id for m in job.messages] == ["ann-0", "ann-1", "ann-2"]
    assert len(feed.acked) == 3 and windows.pending() == 1  # ann-3 opens the next window
    assert windows.state(key("ann")).ids == {"ann-3"}


def test_a_redelivered_message_does_not_hold_twice() -> None:
    windows = OpenWindows(RULES, PARTITIONS)
    feed = Feed(windows)
    feed.batch("ann", range(1))
    k, m = key("ann"), message("ann", 0)
    again = feed.event(k)
    windows.track(again)
    assert windows.add(k, m, b"{}", T0) == []
    windows.hold(k, [(m, again)])
    assert windows.pending() == 2  # the first delivery still holds; the copy waits behind it
    [job] = [j for _, j in windows.drain(T0)]
    windows.closed(k, job)
    assert windows.pending() == 0 and len(windows) == 0


def test_close_due_judges_each_window_by_the_clock_and_closed_moves_it_on() -> None:
    windows = OpenWindows(RULES, PARTITIONS)
    feed = Feed(windows)
    feed.batch("ann", range(2))
    feed.batch("bob", range(1))
    assert list(windows.close_due(T0 + timedelta(seconds=30))) == []
    due = list(windows.close_due(T0 + timedelta(seconds=120)))
    assert sorted(k for k, _ in due) == [key("ann"), key("bob")]
    assert {j.trigger for _, j in due} == {WindowTrigger.idle_gap}
    assert windows.pending() == 3  # nothing acknowledged before the jobs are sent
    for k, job in due:
        windows.closed(k, job)
    assert windows.pending() == 0 and len(windows) == 0 and len(feed.acked) == 3


def test_drain_closes_every_open_window_with_the_shutdown_trigger() -> None:
    windows = OpenWindows(RULES, PARTITIONS)
    feed = Feed(windows)
    for user in ("ann", "bob", "cy"):
        feed.batch(user, range(2))
    drained = windows.drain(T0)
    assert len(drained) == 3 and {j.trigger for _, j in drained} == {WindowTrigger.shutdown}
    for k, job in drained:
        windows.closed(k, job)
    assert windows.pending() == 0 and windows.drain(T0) == []


def test_revoke_drops_windows_and_holds_of_those_partitions_only() -> None:
    windows = OpenWindows(RULES, PARTITIONS)
    feed = Feed(windows)
    users = [f"u{i}" for i in range(12)]
    for user in users:
        feed.batch(user, range(2))
    gone = {partition_for(key(users[0]), PARTITIONS)}
    kept = [u for u in users if partition_for(key(u), PARTITIONS) not in gone]
    windows.revoke(gone)
    assert len(windows) == len(kept) and windows.pending() == 2 * len(kept)
    assert feed.acked == []  # the new owner re-reads them: nothing is acknowledged
    assert sorted(k for k, _ in windows.drain(T0)) == sorted(key(u) for u in kept)


def test_erase_drops_the_open_window_and_acknowledges_its_records() -> None:
    windows = OpenWindows(RULES, PARTITIONS)
    feed = Feed(windows)
    feed.batch("ann", range(2))
    k = key("ann")
    forget = feed.event(k)
    windows.track(forget)
    windows.erase(k, [], forget)
    assert windows.pending() == 0 and len(windows) == 0 and len(feed.acked) == 3
    assert windows.state(k).is_empty and windows.drain(T0) == []
