"""Ingest agent: decode, validate, window. Invalid input goes to the DLQ; nothing blocks.

Batched with ``take_events``; a batch is held uncommitted until it is handled
(:func:`hold_batch`). A timer closes windows that went idle or grew old; graceful
shutdown closes the rest.

Open windows live in this process's memory (:class:`OpenWindows`, which decides what is
held and released), not in a changelog-backed table: a table would re-write each growing
window per batch, and restoring it relied on ``end_offsets``, which tansu gets wrong. The
agent here decodes and routes each record, sends what closes, and dead-letters what is
invalid; the log is the window's durable copy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, cast

import faust

from memstream.consolidation.windowing import early_job
from memstream.schemas import (
    ChatMessage,
    ConsolidationJob,
    DeadLetter,
    ForgetJob,
    WindowTrigger,
    utcnow,
)
from memstream.schemas.dlq import letter_key
from memstream.streams.codec import CONTROL_HEADER, Rejected
from memstream.streams.routing import route_record
from memstream.worker.acks import hold_batch
from memstream.worker.context import WorkerContext
from memstream.worker.delivery import InOrderDelivery
from memstream.worker.open_windows import OpenWindows

log = logging.getLogger(__name__)

#: Header on a record this worker moved to its key's partition (see ``_reroute``).
REROUTED_HEADER = "memstream-rerouted"

#: Consolidates jobs inline (used at shutdown, when the jobs agent no longer consumes).
InlineProcess = Callable[[list[ConsolidationJob]], Awaitable[None]]


def _headers(message: Any) -> dict[str, str]:
    headers = message.headers or {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {
        str(k): (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for k, v in items
    }


def _header(message: Any, name: str) -> str | None:
    """One header's value: the ingest path asks every record for the control header only,
    and decoding all of a record's headers into a dict cost ~4% of ingest."""
    headers = message.headers
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for k, v in items:
        if k == name:
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return None


def register_ingest(
    app: faust.App,
    ctx: WorkerContext,
    topics: dict[str, faust.TopicT],
) -> Callable[[InlineProcess], Awaitable[int]]:
    """Wire the ingest agent and the window timer; returns the shutdown drain function."""
    s = ctx.settings
    stats = ctx.stats
    partitions = s.kafka.partitions
    messages_topic, jobs_topic, dlq_topic = topics["messages"], topics["jobs"], topics["dlq"]

    async def emit(job: ConsolidationJob) -> Any:
        stats.windows_by_trigger[job.trigger.value] += 1
        stats.counters["jobs_emitted"] += 1
        return await jobs_topic.send(
            key=job.key.encode(), value=job.model_dump_json().encode(), force=True
        )

    windows = OpenWindows(s.window, partitions)
    # LLM-free: a window costs nothing, so nothing makes a user wait for its close.
    early = s.window.early_memories and s.llm.backend == "none"

    delivery = InOrderDelivery(app, s.kafka.messages_topic, stats)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types a union
    async def forget_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
        # The new owner re-reads these messages from the last committed offset.
        windows.revoke({tp.partition for tp in revoked if tp.topic == s.kafka.messages_topic})

    def count_letter(reason: str) -> None:
        stats.dlq_by_reason[reason] += 1

    def nothing() -> None:
        pass

    async def dead_letter(event: Any, rejected: Rejected) -> Any:
        """Send the record's letter; returns the send's future (counted once it is acked)."""
        msg = event.message
        letter = DeadLetter.of(
            rejected.reason,
            rejected.detail,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            headers=_headers(msg),
        )
        return await dlq_topic.send(
            key=letter_key(msg.key), value=letter.model_dump_json().encode(), force=True
        )

    async def reroute(event: Any, key: bytes, partition: int) -> Any:
        # A producer with a non-default partitioner put this key elsewhere. Move it to the
        # partition murmur2 gives, where the key's window lives, instead of splitting the user.
        msg = event.message
        headers = [*(_headers(msg).items()), (REROUTED_HEADER, str(msg.partition))]
        stats.counters["messages_rerouted"] += 1
        return await messages_topic.send(
            key=key,
            value=msg.value,
            partition=partition,
            headers=[(k, v.encode()) for k, v in headers],
            force=True,
        )

    @app.agent(messages_topic, name="memstream.ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        batch = s.worker.ingest_batch
        batches = cast(faust.Stream[bytes], stream).take_events(
            batch, within=s.worker.ingest_batch_seconds
        )
        async for events in batches:
            with hold_batch(events):
                await ingest_batch(events)

    async def ingest_batch(events: Sequence[Any]) -> None:
        """One batch. Every record is sent on (a job, a dead letter, a re-route) before the
        batch ends and its offsets can be committed: a send that fails ends the agent, and
        the worker with it (``WorkerApp``), so the batch is read again after a restart."""
        # Send futures, and what may happen once each is acknowledged by the broker.
        sent: list[tuple[Any, Callable[[], None]]] = []
        now = utcnow()
        skew = timedelta(seconds=s.window.max_future_skew_seconds)
        by_key: dict[bytes, list[tuple[ChatMessage | ForgetJob, Any]]] = {}
        # Behind the log (a burst, a backlog): no early jobs, the windows come soon enough.
        produced = events[-1].message.timestamp if events else None
        caught_up = produced is None or (
            now.timestamp() - float(produced) <= s.window.early_max_lag_seconds
        )
        if early and not caught_up:
            stats.counters["early_skipped_behind"] += 1
        for event in events:
            if not await delivery.admit(event):
                continue
            stats.counters["messages_in"] += 1
            windows.track(event)
            msg = event.message
            routed = route_record(
                msg.key,
                msg.value,
                _header(msg, CONTROL_HEADER),
                partitions=partitions,
                max_bytes=s.kafka.max_message_bytes,
                now=now,
                max_future_skew=skew,
            )
            if isinstance(routed, Rejected):
                reason = routed.reason.value
                sent.append((await dead_letter(event, routed), partial(count_letter, reason)))
                windows.done(event)
                continue
            key = routed.key
            if routed.home != msg.partition:
                sent.append((await reroute(event, key, routed.home), nothing))
                windows.done(event)
                continue
            by_key.setdefault(key, []).append((routed.item, event))
        for key, items in by_key.items():
            open_items: list[tuple[ChatMessage, Any]] = []
            for item, event in items:
                if isinstance(item, ForgetJob):
                    # The open window is dropped; the forget follows the user's earlier jobs.
                    forget = item.model_dump_json().encode()
                    sent.append((await jobs_topic.send(key=key, value=forget, force=True), nothing))
                    stats.counters["forgets"] += 1
                    windows.erase(key, open_items, event)
                    open_items = []
                    continue
                raw = event.message.value  # what ``item`` was validated from
                for job in windows.add(key, item, raw, now):
                    # Its messages' records are released only once the job is acknowledged.
                    sent.append((await emit(job), partial(windows.emitted, key, job)))
                open_items.append((item, event))
                stats.counters["messages_windowed"] += 1
            if early and open_items and caught_up:
                provisional = early_job(windows.state(key), [m for m, _ in open_items], now)
                if provisional is not None:  # searchable now; the window's own job completes it
                    sent.append((await emit(provisional), nothing))
            windows.hold(key, open_items)
        for future, then in sent:
            await future  # raises if the broker refused it
            then()
        stats.counters["acks_pending"] = windows.pending()

    @app.timer(interval=s.window.tick_seconds, name="memstream.close_idle_windows")  # type: ignore[untyped-decorator]
    async def close_idle_windows() -> None:
        for key, job in windows.close_due(utcnow()):
            # Delivered before the window moves on and its messages are acknowledged.
            await (await emit(job))
            windows.closed(key, job)
        stats.counters["acks_pending"] = windows.pending()  # a gauge: windows closed above

    async def drain(process: InlineProcess) -> int:
        """Close every open window of this worker and consolidate it inline."""
        closed = windows.drain(utcnow())
        if not closed:
            return 0
        await process([job for _, job in closed])
        for key, job in closed:
            stats.windows_by_trigger[WindowTrigger.shutdown.value] += 1
            windows.closed(key, job)
        return len(closed)

    return drain
