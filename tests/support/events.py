"""Stand-ins for Faust events (a message with partition, offset and a reference count, and
``ack``): what the ack bookkeeping sees of them, for tests without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeMessage:
    partition: int
    offset: int
    refcount: int = 1

    def incref(self) -> None:
        self.refcount += 1


@dataclass
class FakeEvent:
    message: FakeMessage
    log: list[tuple[int, int]] = field(default_factory=list)

    def ack(self) -> bool:
        self.message.refcount -= 1
        self.log.append((self.message.partition, self.message.offset))
        return self.message.refcount == 0


def events(partition: int, offsets: range, log: list[tuple[int, int]]) -> list[Any]:
    return [FakeEvent(FakeMessage(partition, o), log) for o in offsets]
