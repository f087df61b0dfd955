"""Contiguous delivery per partition for an agent's source topic (see ``worker/offsets.py``)."""

from __future__ import annotations

import logging
from typing import Any, cast

import faust
from faust.types import TP

from memstream.worker.context import WorkerStats
from memstream.worker.offsets import OffsetTracker, Verdict

log = logging.getLogger(__name__)


class InOrderDelivery:
    """Admit a topic's records only in offset order from the committed offset; fetch skipped
    records again. One per agent; reset on every revocation."""

    def __init__(self, app: faust.App, topic: str, stats: WorkerStats) -> None:
        self._app = app
        self._topic = topic
        self._stats = stats
        self._offsets = OffsetTracker()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types a union
        async def _reset(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
            self._offsets.forget({tp.partition for tp in revoked if tp.topic == topic})

    async def _first_offset(self, partition: int) -> int:
        tp = TP(self._topic, partition)
        # Faust reads the group's committed offsets from the broker at every assignment
        # (a private attribute; faust-streaming is pinned to 0.15.3 in pyproject.toml).
        committed = cast(Any, self._app.consumer)._committed_offset.get(tp)
        if committed is not None:
            return int(committed)
        earliest = await self._app.consumer.earliest_offsets(tp)
        return int(earliest.get(tp) or 0)

    async def admit(self, event: Any) -> bool:
        """False for a record to ignore: a re-delivery, or one past records Faust skipped."""
        msg = event.message
        if not self._offsets.knows(msg.partition):
            self._offsets.start(msg.partition, await self._first_offset(msg.partition))
        verdict = self._offsets.check(msg.partition, msg.offset)
        if verdict is Verdict.process:
            return True
        msg.incref()  # never acknowledged: another delivery of this offset is the one handled
        self._stats.counters[f"{self._topic}:records_{verdict.value}"] += 1
        if verdict is Verdict.seek:
            missing_from = self._offsets.expected(msg.partition)
            log.warning(
                "%s[%d]: got offset %d, expected %d; fetching the skipped records again",
                self._topic,
                msg.partition,
                msg.offset,
                missing_from,
            )
            await self._app.consumer.seek(TP(self._topic, msg.partition), missing_from)
        return False
