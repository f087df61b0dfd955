"""Producers of the project's topics: chat messages and control records keyed by user, and
memory events (the workers' and a rebuild's), on one pipelined base."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from memstream.config import KafkaSettings
from memstream.schemas.events import GenerationSwitch, MemoryEvent
from memstream.schemas.jobs import AddMemoryJob, DeleteMemoriesJob, ForgetJob
from memstream.schemas.messages import ChatMessage
from memstream.streams.codec import CONTROL_HEADER
from memstream.streams.events import event_record, switch_record

#: Header that tells consumers the value's content type; informative, not required.
CONTENT_TYPE = ("content-type", b"application/json")
#: Sends in flight before a pipelined sender waits for their acks.
IN_FLIGHT = 1000
#: Longest wait for the broker's list of topics.
TOPIC_LOOKUP_SECONDS = 2.0


class Producer:
    """One aiokafka producer (acks=all) with pipelined sends: up to ``window`` in flight, then
    wait for their acks. The base of every producer of the project's own topics."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        linger_ms: int = 5,
        compression: str | None = None,
        max_request_size: int | None = None,
        max_batch_size: int = 16384,
        window: int = IN_FLIGHT,
    ) -> None:
        self._kafka = kafka
        self._window = window
        self._producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            acks="all",
            linger_ms=linger_ms,
            compression_type=compression,
            max_request_size=max_request_size or max(1_048_576, kafka.max_message_bytes * 2),
            max_batch_size=max_batch_size,
        )
        self._inflight: list[asyncio.Future[object]] = []

    async def __aenter__(self) -> Self:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # a failed start leaves no unclosed producer behind
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                await self.flush()
        finally:
            await self._producer.stop()

    async def send_pipelined(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        wait: bool = False,
    ) -> None:
        """Queue a send; wait for the acks of all queued ones once ``window`` are in flight.
        ``wait``: wait for this send's own ack instead (a single, acknowledged write)."""
        future = await self._producer.send(
            topic, value=value, key=key, headers=headers, partition=partition
        )
        if wait:
            await future
            return
        self._inflight.append(future)
        if len(self._inflight) >= self._window:
            await self.flush()

    async def flush(self) -> None:
        """Wait for the ack of every queued send."""
        pending, self._inflight = self._inflight, []
        if pending:
            await asyncio.gather(*pending)

    async def topic_exists(self, topic: str) -> bool | None:
        """Whether the broker knows ``topic`` (None: it could not be asked within
        ``TOPIC_LOOKUP_SECONDS``). Asks for every topic's metadata, which never creates one."""
        try:
            cluster = await asyncio.wait_for(
                self._producer.client.fetch_all_metadata(), TOPIC_LOOKUP_SECONDS
            )
        except (TimeoutError, KafkaError):
            return None
        return topic in cluster.topics()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(await self._producer.partitions_for(topic))


class MessageProducer(Producer):
    """Produce chat messages keyed by ``owner_id/user_id`` (acks=all, gzip, batched)."""

    def __init__(self, kafka: KafkaSettings, *, linger_ms: int = 5) -> None:
        super().__init__(kafka, linger_ms=linger_ms, compression="gzip")

    async def send(self, message: ChatMessage) -> None:
        """Send one message and wait for the broker's ack."""
        await self.send_raw(message.key.encode(), message.model_dump_json().encode())

    async def send_raw(self, key: bytes | None, value: bytes, topic: str | None = None) -> None:
        """Send bytes as they are (for tools and tests that need to send invalid input too)."""
        await self.send_pipelined(
            topic or self._kafka.messages_topic, value, key=key, headers=[CONTENT_TYPE], wait=True
        )

    async def forget(self, job: ForgetJob) -> None:
        """Erase a user: a control record in the user's message stream, acked by the broker.
        The worker erases what came before it (memories, open window) and writes a tombstone
        on the memory log."""
        await self.send_pipelined(
            self._kafka.messages_topic,
            job.model_dump_json().encode(),
            key=job.key.encode(),
            headers=[CONTENT_TYPE, (CONTROL_HEADER, b"forget")],
            wait=True,
        )

    async def send_job(self, job: AddMemoryJob | DeleteMemoriesJob) -> None:
        """A management job straight onto the jobs topic (serialised with the user's others)."""
        await self.send_pipelined(
            self._kafka.jobs_topic, job.model_dump_json().encode(), key=job.key.encode(), wait=True
        )

    async def send_many(self, messages: Iterable[ChatMessage]) -> int:
        """Pipeline sends and wait for all acks."""
        return await self.send_many_raw(
            (m.key.encode(), m.model_dump_json().encode()) for m in messages
        )

    async def send_many_raw(self, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        sent = 0
        for key, value in records:
            await self.send_pipelined(
                self._kafka.messages_topic, value, key=key, headers=[CONTENT_TYPE]
            )
            sent += 1
        await self.flush()
        return sent


class EventPublisher(Producer):
    """Memory events onto ``memstream.memories``, uncompressed as the workers write them
    (vectors barely compress). With a ``generation`` (a rebuild from messages) every event is
    tagged with it, and :meth:`switch_markers` closes the generation on every partition."""

    def __init__(
        self, kafka: KafkaSettings, *, generation: int | None = None, linger_ms: int = 20
    ) -> None:
        super().__init__(
            kafka,
            linger_ms=linger_ms,
            max_request_size=4 * 1024 * 1024,
            max_batch_size=1 << 20,
        )
        self.generation = generation

    async def publish(self, event: MemoryEvent) -> None:
        if self.generation is not None:
            event.generation = self.generation
        key, value, headers = event_record(event)
        await self.send_pipelined(self._kafka.memories_topic, value, key=key, headers=headers)

    async def switch_markers(self) -> None:
        """One marker per partition, after every tagged event of the generation."""
        if self.generation is None:
            raise ValueError("switch markers close a generation; this publisher has none")
        await self.flush()
        value, headers = switch_record(GenerationSwitch(generation=self.generation))
        topic = self._kafka.memories_topic
        for partition in sorted(await self.partitions_for(topic)):
            await self.send_pipelined(topic, value, headers=headers, partition=partition, wait=True)


@asynccontextmanager
async def message_producer(kafka: KafkaSettings) -> AsyncIterator[MessageProducer]:
    async with MessageProducer(kafka) as producer:
        yield producer


class ProduceReport:
    """What ``produce_file`` did: counts, and each refused line with its reason."""

    def __init__(self) -> None:
        self.sent = 0
        self.lines = 0
        self.errors: list[tuple[int, str]] = []
        self.seconds = 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "lines": self.lines,
            "sent": self.sent,
            "invalid": len(self.errors),
            "seconds": round(self.seconds, 3),
            "msgs_per_s": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
        }


async def produce_file(
    kafka: KafkaSettings, path: Path | None, *, raw: bool = False, progress: bool = True
) -> ProduceReport:
    """Produce a JSON Lines file (``None``: standard input). Invalid lines are reported (not
    sent) unless ``raw``. The progress bar counts messages."""
    from tqdm import tqdm

    report = ProduceReport()
    started = time.perf_counter()
    if path is not None:
        with path.open("rb") as fh:
            total: int | None = sum(1 for line in fh if line.strip())
    else:
        total = None

    def records() -> Iterator[tuple[bytes | None, bytes]]:
        with (
            path.open("rb") if path is not None else contextlib.nullcontext(sys.stdin.buffer) as fh,
            tqdm(
                total=total,
                unit=" msg",
                disable=not progress,
                desc=f"produce {path.name if path is not None else 'stdin'}",
            ) as bar,
        ):
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                bar.update(1)
                report.lines += 1
                value = line.rstrip(b"\r\n")
                if raw:
                    yield None, value
                    continue
                try:
                    message = ChatMessage.model_validate_json(value)
                except ValidationError as exc:
                    first = exc.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"]) or "(line)"
                    report.errors.append((line_no, f"{where}: {first['msg']}"))
                    continue
                yield message.key.encode(), value

    async with MessageProducer(kafka) as producer:
        report.sent = await producer.send_many_raw(_keyed(records()))
    report.seconds = time.perf_counter() - started
    return report


def _keyed(records: Iterator[tuple[bytes | None, bytes]]) -> Iterator[tuple[bytes | None, bytes]]:
    """Raw lines get the key from their owner/user fields when they have them."""
    for key, value in records:
        if key is None:
            try:
                data = json.loads(value)
                key = f"{data['owner_id']}/{data['user_id']}".encode()
            except (ValueError, KeyError, TypeError):
                key = None
        yield key, value
