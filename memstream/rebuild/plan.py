"""What a replay keeps: pure rules over (partition, offset, user key, headers).

A first pass over the topics' headers (values are never decoded) fills a :class:`ReplayPlan`;
the second pass asks it about every record. Two rules:

- erasure: a user's records up to their last forget (a tombstone on the events topic, a
  forget control on the messages topic) are skipped, so nothing of theirs is ever written
  again; what they said after being forgotten is kept;
- lineage: a rebuild from messages tags its events with a generation and, when it goes live,
  writes a switch marker to every partition. From the last marker of a partition, that
  generation's tagged events replace the untagged ones before the marker; untagged events
  after it (the workers' writes once the switch was made) extend it. Tagged events of a
  generation that never went live (an interrupted rebuild) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memstream.schemas.events import MemoryEventType
from memstream.streams.codec import CONTROL_HEADER
from memstream.streams.events import EVENT_HEADER, SWITCH, generation_of

FORGET_CONTROL = "forget"


@dataclass
class ReplayPlan:
    erased_events: dict[str, tuple[int, int]] = field(default_factory=dict)
    """User key -> (partition, offset) of their last tombstone on the events topic."""
    erased_messages: dict[str, tuple[int, int]] = field(default_factory=dict)
    """User key -> (partition, offset) of their last forget control on the messages topic."""
    switches: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Events partition -> (offset, generation) of its last switch marker."""

    # -- first pass ------------------------------------------------------------------------
    def scan_event(self, partition: int, offset: int, key: str, headers: dict[str, str]) -> None:
        kind = headers.get(EVENT_HEADER)
        if kind == MemoryEventType.forget.value:
            _latest(self.erased_events, key, partition, offset)
        elif kind == SWITCH:
            generation = generation_of(headers)
            current = self.switches.get(partition)
            if generation is not None and (current is None or current[0] < offset):
                self.switches[partition] = (offset, generation)

    def scan_message(self, partition: int, offset: int, key: str, headers: dict[str, str]) -> None:
        if headers.get(CONTROL_HEADER) == FORGET_CONTROL:
            _latest(self.erased_messages, key, partition, offset)

    # -- second pass -----------------------------------------------------------------------
    def erased_event(self, partition: int, offset: int, key: str) -> bool:
        return _before(self.erased_events.get(key), partition, offset)

    def erased_message(self, partition: int, offset: int, key: str) -> bool:
        return _before(self.erased_messages.get(key), partition, offset)

    def in_lineage(self, partition: int, offset: int, generation: int | None) -> bool:
        """Does this event belong to the history of what is live now?"""
        marker = self.switches.get(partition)
        if marker is None:
            return generation is None
        marker_offset, live_generation = marker
        if generation is not None:
            return generation == live_generation
        return offset > marker_offset

    @property
    def live_generation(self) -> int | None:
        generations = {g for _, g in self.switches.values()}
        return max(generations) if generations else None


def _latest(seen: dict[str, tuple[int, int]], key: str, partition: int, offset: int) -> None:
    current = seen.get(key)
    if current is None or current[0] != partition or current[1] < offset:
        seen[key] = (partition, offset)


def _before(mark: tuple[int, int] | None, partition: int, offset: int) -> bool:
    """A user's records all sit on one partition (keyed); one elsewhere was not yet routed
    home (it is dropped by the worker too) and is judged by offset only on its own."""
    return mark is not None and mark[0] == partition and offset <= mark[1]
