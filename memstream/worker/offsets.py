"""Notice records Faust did not deliver, so the ingest agent can fetch them again. Pure.

After a restart with a backlog, faust-streaming 0.15 can drop the first records it fetched
while it restored tables (faust-streaming issue #596): the agent's first record of a partition
is then past the group's committed offset. Faust's commit check (issue #606) can then commit
over a single such record, losing it for good. A partition's records must therefore arrive
contiguously from the committed offset; on a gap the agent seeks back and ignores records of
that partition until the missing offset arrives. Offsets that really do not exist (transaction
markers of a transactional producer, compaction) show up as a gap that the re-fetch confirms,
and are then accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    process = "process"
    duplicate = "duplicate"  # delivered before; its first delivery is being handled
    seek = "seek"  # records are missing: seek back to ``expected`` (once)
    skip = "skip"  # waiting for the re-fetch after a seek


@dataclass
class _Resync:
    expected: int
    max_skipped: int


class OffsetTracker:
    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._resync: dict[int, _Resync] = {}

    def knows(self, partition: int) -> bool:
        return partition in self._next

    def start(self, partition: int, first_offset: int) -> None:
        """The offset the partition's records should start at (the committed one)."""
        self._next[partition] = first_offset
        self._resync.pop(partition, None)

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._next.pop(partition, None)
            self._resync.pop(partition, None)

    def expected(self, partition: int) -> int:
        return self._next[partition]

    def check(self, partition: int, offset: int) -> Verdict:
        expected = self._next[partition]
        resync = self._resync.get(partition)
        if resync is not None:
            if offset == resync.expected or offset <= resync.max_skipped:
                # The re-fetch has begun: either the missing record, or proof it does not exist.
                del self._resync[partition]
                self._next[partition] = offset + 1
                return Verdict.process
            resync.max_skipped = offset
            return Verdict.skip
        if offset < expected:
            return Verdict.duplicate
        if offset > expected:
            self._resync[partition] = _Resync(expected=expected, max_skipped=offset)
            return Verdict.seek
        self._next[partition] = offset + 1
        return Verdict.process
