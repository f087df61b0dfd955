"""The query service's way onto the log: management jobs, forget, chat turns."""

from __future__ import annotations

import asyncio

from fastapi import HTTPException

from memstream.config import Settings
from memstream.schemas import AddMemoryJob, ChatMessage, DeleteMemoriesJob, ForgetJob
from memstream.streams.producer import MessageProducer


class LogWriter:
    """One producer, started on first use so a read-only deployment never connects to Kafka."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: MessageProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> MessageProducer:
        async with self._lock:
            if self._producer is None:
                producer = MessageProducer(self._settings.kafka)
                try:
                    await asyncio.wait_for(producer.__aenter__(), timeout=10)
                except Exception as exc:
                    raise HTTPException(503, f"the message log is unavailable: {exc}") from exc
                self._producer = producer
            return self._producer

    async def send_job(self, job: AddMemoryJob | DeleteMemoriesJob) -> None:
        await (await self._get()).send_job(job)

    async def forget(self, job: ForgetJob) -> None:
        await (await self._get()).forget(job)

    async def send_messages(self, messages: list[ChatMessage]) -> None:
        await (await self._get()).send_many(messages)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.__aexit__(None, None, None)
            self._producer = None
