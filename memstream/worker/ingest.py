"""Ingest agent: decode, validate, window. Invalid input goes to the DLQ; nothing blocks.

Batched with ``take_events``; a batch is held uncommitted until it is handled
(:func:`hold_batch`). A timer closes windows that went idle or grew old; graceful
shutdown closes the rest.

Open windows live in this process's memory, not in a changelog-backed table. A message's
source offset is acknowledged only once the window holding it has been emitted as a job, and
acks leave each partition in offset order (:class:`AckLedger`). So after a crash, or when a
partition moves to another worker, every message of an open window is read again from the
log and its window rebuilt: the log is the window's durable copy, and nothing is written
twice per message (a table would re-write each growing window per batch, and restoring it
relied on ``end_offsets``, which tansu gets wrong).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

import faust

from memstream.consolidation.windowing import (
    WindowState,
    add_message,
    advance_after,
    close_window,
    due_trigger,
    next_window,
)
from memstream.schemas import (
    ChatMessage,
    ConsolidationJob,
    DeadLetter,
    ForgetJob,
    WindowTrigger,
    utcnow,
)
from memstream.streams.codec import CONTROL_HEADER, Rejected
from memstream.streams.partitioning import partition_for
from memstream.streams.routing import route_record
from memstream.worker.acks import AckLedger, hold_batch
from memstream.worker.context import WorkerContext
from memstream.worker.delivery import InOrderDelivery

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

    ledger = AckLedger()
    #: key -> the user's open window, for the partitions this worker owns.
    windows: dict[bytes, WindowState] = {}

    def current(key: bytes) -> WindowState:
        found = windows.get(key)
        return WindowState() if found is None else found

    def keep(key: bytes, state: WindowState) -> None:
        if state.is_empty:
            windows.pop(key, None)
        else:
            windows[key] = state

    # key -> message_id -> the event that holds the watermark for a message in an open window
    held: dict[bytes, dict[str, Any]] = {}

    def hold(key: bytes, state: WindowState, items: list[tuple[ChatMessage, Any]]) -> None:
        """Keep this batch's open-window events unreleased; release all the others."""
        mine = held.setdefault(key, {})
        for message, event in items:  # the first delivery of a message holds it
            if state.has(message.message_id) and message.message_id not in mine:
                mine[message.message_id] = event
        for message, event in items:  # O(batch), not O(window): windows can be long
            if mine.get(message.message_id) is not event:
                ledger.release(event)
        if not mine:
            del held[key]

    def release(key: bytes, job: ConsolidationJob) -> None:
        """The job is in the producer (flushed before any commit): its messages may go."""
        mine = held.get(key)
        if not mine:
            return
        for message in job.messages:
            event = mine.pop(message.message_id, None)
            if event is not None:
                ledger.release(event)
        if not mine:
            del held[key]

    delivery = InOrderDelivery(app, s.kafka.messages_topic, stats)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types a union
    async def forget_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
        # The new owner re-reads these messages from the last committed offset.
        gone = {tp.partition for tp in revoked if tp.topic == s.kafka.messages_topic}
        ledger.forget(gone)
        for key in [k for k in held if partition_for(k, partitions) in gone]:
            del held[key]
        for key in [k for k in windows if partition_for(k, partitions) in gone]:
            del windows[key]

    async def dead_letter(event: Any, rejected: Rejected) -> None:
        msg = event.message
        letter = DeadLetter(
            reason=rejected.reason,
            detail=rejected.detail,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key_b64=DeadLetter.encode(msg.key),
            value_b64=base64.b64encode(msg.value or b"").decode("ascii"),
            headers=_headers(msg),
        )
        stats.dlq_by_reason[rejected.reason.value] += 1
        await dlq_topic.send(key=msg.key, value=letter.model_dump_json().encode(), force=True)

    async def reroute(event: Any, key: bytes, partition: int) -> None:
        # A producer with a non-default partitioner put this key elsewhere. Move it to the
        # partition murmur2 gives, where the key's window lives, instead of splitting the user.
        msg = event.message
        headers = [*(_headers(msg).items()), (REROUTED_HEADER, str(msg.partition))]
        stats.counters["messages_rerouted"] += 1
        await messages_topic.send(
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
        now = utcnow()
        skew = timedelta(seconds=s.window.max_future_skew_seconds)
        by_key: dict[bytes, list[tuple[ChatMessage | ForgetJob, Any]]] = {}
        for event in events:
            if not await delivery.admit(event):
                continue
            stats.counters["messages_in"] += 1
            ledger.track(event)
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
                await dead_letter(event, routed)
                ledger.release(event)
                continue
            key = routed.key
            if routed.home != msg.partition:
                await reroute(event, key, routed.home)
                ledger.release(event)
                continue
            by_key.setdefault(key, []).append((routed.item, event))
        for key, items in by_key.items():
            state = current(key)
            open_items: list[tuple[ChatMessage, Any]] = []
            for item, event in items:
                if isinstance(item, ForgetJob):
                    state = await erase(key, state, item, event, open_items)
                    open_items = []
                    continue
                raw = event.message.value  # what ``item`` was validated from
                state, jobs = add_message(state, item, now, s.window, raw)
                for job in jobs:
                    await emit(job)
                    release(key, job)
                open_items.append((item, event))
                stats.counters["messages_windowed"] += 1
            keep(key, state)
            hold(key, state, open_items)
        stats.counters["acks_pending"] = ledger.pending()

    async def erase(
        key: bytes,
        state: WindowState,
        forget: ForgetJob,
        event: Any,
        open_items: list[tuple[ChatMessage, Any]],
    ) -> WindowState:
        """A forget in the user's stream: the open window is dropped (its messages are
        acknowledged unconsolidated) and the forget job follows the user's earlier jobs."""
        await jobs_topic.send(key=key, value=forget.model_dump_json().encode(), force=True)
        stats.counters["forgets"] += 1
        for held_event in held.pop(key, {}).values():
            ledger.release(held_event)
        for _, item_event in open_items:
            ledger.release(item_event)
        ledger.release(event)
        return next_window(state)

    def active_keys() -> list[bytes]:
        return list(windows)

    @app.timer(interval=s.window.tick_seconds, name="memstream.close_idle_windows")  # type: ignore[untyped-decorator]
    async def close_idle_windows() -> None:
        now = utcnow()
        for key in active_keys():
            state = current(key)
            trigger = due_trigger(state, now, s.window)
            if trigger is None:
                continue
            job = close_window(state, trigger, now)
            # Deliver the job before the window is forgotten and its messages acknowledged: a
            # crash in between re-emits the same job (idempotent) rather than losing it.
            await (await emit(job))
            keep(key, advance_after(current(key), job))
            release(key, job)
        stats.counters["acks_pending"] = ledger.pending()  # a gauge: windows closed above

    async def drain(process: InlineProcess) -> int:
        """Close every open window of this worker and consolidate it inline."""
        now = utcnow()
        closed: list[tuple[bytes, ConsolidationJob]] = []
        for key in active_keys():
            state = current(key)
            if not state.is_empty:
                closed.append((key, close_window(state, WindowTrigger.shutdown, now)))
        if not closed:
            return 0
        await process([job for _, job in closed])
        for key, job in closed:
            stats.windows_by_trigger[WindowTrigger.shutdown.value] += 1
            keep(key, advance_after(current(key), job))
            release(key, job)
        return len(closed)

    return drain
