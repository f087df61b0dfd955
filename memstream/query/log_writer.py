"""The query service's way onto the log: management jobs, forget, chat turns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from fastapi import HTTPException

from memstream.config import Settings
from memstream.schemas import AddMemoryJob, ChatMessage, DeleteMemoriesJob, ForgetJob
from memstream.streams.producer import MessageProducer


class LogWriter:
    """One producer, started on first use so a read-only deployment never connects to Kafka.

    Every write waits for the broker at most ``api.produce_timeout_seconds``; past it, or if
    the broker refuses, the request answers 503 with the reason. A record whose wait timed
    out may still be delivered once the broker is back: every write is idempotent (adds by
    their request id, deletes and forgets by effect), so a client retrying it is safe."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._timeout = settings.api.produce_timeout_seconds
        self._producer: MessageProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> MessageProducer:
        async with self._lock:
            if self._producer is None:
                producer = MessageProducer(self._settings.kafka)
                try:
                    await self._bounded(producer.__aenter__(), "connecting")
                except HTTPException:
                    await producer.__aexit__(None, None, None)
                    raise
                self._producer = producer
            return self._producer

    async def _bounded(self, write: Awaitable[object], what: str, topic: str = "") -> None:
        try:
            await asyncio.wait_for(write, timeout=self._timeout)
        except TimeoutError as exc:
            known = await self._producer.topic_exists(topic) if topic and self._producer else None
            if known is False:
                raise HTTPException(
                    503,
                    f"the message log is unavailable while {what}: topic {topic} does not "
                    f"exist (`memstream topics create`, or restart the worker, makes it)",
                ) from exc
            raise HTTPException(
                503,
                f"the message log is unavailable: no answer from the broker "
                f"({self._settings.kafka.bootstrap_servers}) within {self._timeout:g} s "
                f"while {what}; retry later",
            ) from exc
        except UnknownTopicOrPartitionError as exc:
            raise HTTPException(
                503,
                f"the message log is unavailable while {what}: a topic does not exist "
                f"(`memstream topics create` makes them)",
            ) from exc
        except KafkaError as exc:
            raise HTTPException(
                503, f"the message log is unavailable while {what}: {type(exc).__name__}: {exc}"
            ) from exc

    async def send_job(self, job: AddMemoryJob | DeleteMemoriesJob) -> None:
        producer = await self._get()
        await self._bounded(
            producer.send_job(job), f"sending job {job.job_id}", self._settings.kafka.jobs_topic
        )

    async def forget(self, job: ForgetJob) -> None:
        producer = await self._get()
        await self._bounded(
            producer.forget(job),
            f"sending forget {job.job_id}",
            self._settings.kafka.messages_topic,
        )

    async def send_messages(self, messages: list[ChatMessage]) -> None:
        producer = await self._get()
        await self._bounded(
            producer.send_many(messages),
            f"sending {len(messages)} messages",
            self._settings.kafka.messages_topic,
        )

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.__aexit__(None, None, None)
            self._producer = None
