"""Async producer helper: ``ChatMessage`` in, keyed record on ``memstream.messages`` out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from memstream.config import KafkaSettings
from memstream.schemas.jobs import AddMemoryJob, DeleteMemoriesJob, ForgetJob
from memstream.schemas.messages import ChatMessage
from memstream.streams.codec import CONTROL_HEADER

#: Header that tells consumers the value's content type; informative, not required.
CONTENT_TYPE = ("content-type", b"application/json")


class MessageProducer:
    """Produce chat messages keyed by ``owner_id/user_id`` (acks=all, gzip, batched)."""

    def __init__(self, kafka: KafkaSettings, *, linger_ms: int = 5) -> None:
        self._kafka = kafka
        self._producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            acks="all",
            linger_ms=linger_ms,
            compression_type="gzip",
            max_request_size=max(1_048_576, kafka.max_message_bytes * 2),
        )

    async def __aenter__(self) -> MessageProducer:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(self, message: ChatMessage) -> None:
        """Send one message and wait for the broker's ack."""
        await self.send_raw(message.key.encode(), message.model_dump_json().encode())

    async def send_raw(self, key: bytes | None, value: bytes, topic: str | None = None) -> None:
        """Send bytes as they are (for tools and tests that need to send invalid input too)."""
        await self._producer.send_and_wait(
            topic or self._kafka.messages_topic, value=value, key=key, headers=[CONTENT_TYPE]
        )

    async def forget(self, job: ForgetJob) -> None:
        """Erase a user: a control record in the user's message stream, acked by the broker.
        The worker erases what came before it (memories, open window) and writes a tombstone
        on the memory log."""
        await self._producer.send_and_wait(
            self._kafka.messages_topic,
            value=job.model_dump_json().encode(),
            key=job.key.encode(),
            headers=[CONTENT_TYPE, (CONTROL_HEADER, b"forget")],
        )

    async def send_job(self, job: AddMemoryJob | DeleteMemoriesJob) -> None:
        """A management job straight onto the jobs topic (serialised with the user's others)."""
        await self._producer.send_and_wait(
            self._kafka.jobs_topic, value=job.model_dump_json().encode(), key=job.key.encode()
        )

    async def send_many(self, messages: Iterable[ChatMessage], *, window: int = 1000) -> int:
        """Pipeline sends (up to ``window`` in flight) and wait for all acks."""
        return await self.send_many_raw(
            ((m.key.encode(), m.model_dump_json().encode()) for m in messages), window=window
        )

    async def send_many_raw(
        self, records: Iterable[tuple[bytes | None, bytes]], *, window: int = 1000
    ) -> int:
        pending: list[asyncio.Future[object]] = []
        sent = 0
        for key, value in records:
            pending.append(
                await self._producer.send(
                    self._kafka.messages_topic, value=value, key=key, headers=[CONTENT_TYPE]
                )
            )
            sent += 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return sent


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
    kafka: KafkaSettings, path: Path, *, raw: bool = False, progress: bool = True
) -> ProduceReport:
    """Produce a JSON Lines file. Invalid lines are reported (not sent) unless ``raw``."""
    from tqdm import tqdm

    report = ProduceReport()
    started = time.perf_counter()

    def records() -> Iterator[tuple[bytes | None, bytes]]:
        with (
            path.open("rb") as fh,
            tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                disable=not progress,
                desc=f"produce {path.name}",
            ) as bar,
        ):
            for line_no, line in enumerate(fh, start=1):
                bar.update(len(line))
                if not line.strip():
                    continue
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
        report.sent = await producer.send_many_raw(_keyed(records()), window=1000)
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
