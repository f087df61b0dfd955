"""The worker's Faust consumer delivers each fetched batch in one task (worker/transport.py).

A stopped flow (what a rebalance does first) must still cut delivery short where it blocks,
and leave the read offset at the last record actually handed on, so that Faust's seek back
to the committed offset reads the rest again. Run against the real broker with a real Faust
app whose agent blocks until the stream buffer is full.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP

from memstream.worker.transport import use_fetch_max_wait
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers

RECORDS = 300
BUFFER = 16


async def test_a_stopped_flow_cuts_delivery_short_and_the_rest_is_read_again(
    tansu: Tansu, tmp_path: Path
) -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    await tansu.create_topic(name)
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap)
    await producer.start()
    try:
        for i in range(RECORDS):
            await producer.send(name, value=b"r%d" % i, partition=0)
    finally:
        await producer.stop()

    use_fetch_max_wait(100)  # installs the worker's consumer, as the worker does
    app = faust.App(
        name,
        broker=f"kafka://{tansu.bootstrap}",
        store="memory://",
        datadir=str(tmp_path / "faust"),
        web_enabled=False,
        topic_partitions=1,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=BUFFER,
        broker_session_timeout=10,
        broker_rebalance_timeout=10,
    )
    topic = app.topic(name, key_serializer="raw", value_serializer="raw", partitions=1)
    tp = TP(name, 0)
    seen: list[int] = []
    gate = asyncio.Event()

    @app.agent(topic)
    async def probe(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            seen.append(event.message.offset)
            if len(seen) == 1:
                await gate.wait()  # the buffer fills behind it and delivery blocks

    await app.start()
    try:
        consumer = app.consumer
        assert type(consumer).__name__ == "_Consumer"
        for _ in range(600):
            if seen and consumer._read_offset.get(tp) == BUFFER:
                break
            await asyncio.sleep(0.05)
        # One record in the agent, BUFFER in its queue, the next one blocked in delivery.
        assert seen == [0] and consumer._read_offset.get(tp) == BUFFER

        consumer.stop_flow()  # as Faust's revocation does, then it empties the buffers
        app.flow_control.suspend()
        app.flow_control.clear()
        await asyncio.sleep(0.2)
        assert consumer._read_offset.get(tp) == BUFFER  # the blocked record was not read
        assert consumer.deliveries_interrupted == 1

        await consumer.seek(tp, 1)  # where a new assignment would start (nothing committed)
        consumer.resume_flow()
        app.flow_control.resume()
        gate.set()
        for _ in range(400):
            if set(range(RECORDS)) <= set(seen):
                break
            await asyncio.sleep(0.05)
        assert sorted(set(seen)) == list(range(RECORDS))
        assert seen == sorted(seen)  # in order, none twice
    finally:
        gate.set()
        await app.stop()
