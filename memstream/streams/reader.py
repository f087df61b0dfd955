"""Read a whole topic, partition by partition position, to its current end (no consumer
group: a replay must not move the workers' committed offsets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition

from memstream.config import KafkaSettings
from memstream.streams.events import header_map
from memstream.streams.topics import TopicMissing


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    timestamp_ms: int


class LogReader:
    """Batches of records from given positions until every partition is caught up.

    "Caught up" uses the high watermark of the fetch responses, not ``end_offsets()``
    (which some brokers, tansu among them, get wrong), and needs one empty poll after it.
    """

    def __init__(
        self, kafka: KafkaSettings, topic: str, *, batch: int = 5000, idle_ms: int = 150
    ) -> None:
        self.topic = topic
        self._batch = batch
        self._idle_ms = idle_ms
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=100,
        )
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self) -> LogReader:
        try:
            await self._consumer.start()
        except BaseException:
            await self._consumer.stop()
            raise
        for _ in range(50):
            await self._consumer.topics()  # refreshes metadata
            numbers = self._consumer.partitions_for_topic(self.topic)
            if numbers:
                break
            await asyncio.sleep(0.1)
        else:
            await self._consumer.stop()
            raise TopicMissing(f"topic {self.topic} does not exist (run: memstream topics create)")
        self.partitions = [TopicPartition(self.topic, p) for p in sorted(numbers)]
        self._consumer.assign(self.partitions)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()

    async def estimate_end(self) -> dict[int, int]:
        """End offsets as the broker reports them: good enough for a progress bar's total."""
        ends = await self._consumer.end_offsets(self.partitions)
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    async def positions(self) -> dict[int, int]:
        return {tp.partition: await self._consumer.position(tp) for tp in self.partitions}

    async def read(self, start: dict[int, int] | None = None) -> AsyncIterator[list[Record]]:
        """From ``start`` (default: the beginning) to the current end."""
        for tp in self.partitions:
            if start is not None and tp.partition in start:
                self._consumer.seek(tp, start[tp.partition])
            else:
                await self._consumer.seek_to_beginning(tp)
        while True:
            fetched = await self._consumer.getmany(
                timeout_ms=self._idle_ms, max_records=self._batch
            )
            records = [
                Record(
                    r.partition,
                    r.offset,
                    r.key,
                    r.value,
                    header_map(r.headers),
                    r.timestamp,
                )
                for rs in fetched.values()
                for r in rs
            ]
            if records:
                yield sorted(records, key=lambda r: (r.partition, r.offset))
                continue
            if await self._caught_up():
                return

    async def _caught_up(self) -> bool:
        for tp in self.partitions:
            high = self._consumer.highwater(tp)
            if high is None or await self._consumer.position(tp) < high:
                return False
        return True
