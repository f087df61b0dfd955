"""Async producer helper: ``ChatMessage`` in, keyed record on ``memstream.messages`` out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from types import TracebackType

from aiokafka import AIOKafkaProducer

from memstream.config import KafkaSettings
from memstream.schemas.messages import ChatMessage

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
