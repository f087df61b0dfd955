"""An agent that dies takes the worker down (exit status 1), instead of leaving a process
whose health checks stay green while nothing is ingested. A real Faust worker on the real
broker, built on the worker's own app class."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.servers import Tansu

pytestmark = [pytest.mark.servers, pytest.mark.faults]

PROGRAM = textwrap.dedent(
    """
    import sys

    import faust

    from memstream.worker.app import WorkerApp

    bootstrap, name, datadir = sys.argv[1:4]
    app = WorkerApp(
        name,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        topic_partitions=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10,
        broker_rebalance_timeout=10,
    )
    topic = app.topic(name, key_serializer="raw", value_serializer="raw", partitions=1)


    @app.agent(topic)
    async def doomed(stream):
        async for value in stream:
            raise RuntimeError(f"cannot handle {value!r}")


    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    """
)


async def test_a_dead_agent_stops_the_worker_with_a_failure_status(
    tansu: Tansu, tmp_path: Path
) -> None:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    await tansu.create_topic(name)
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(name, b"poison", partition=0)
    finally:
        await producer.stop()
    script = tmp_path / "doomed.py"
    script.write_text(PROGRAM, encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), tansu.bootstrap, name, str(tmp_path / "faust")],
        capture_output=True,
        timeout=120,
    )
    log = done.stderr.decode("utf-8", "replace") + done.stdout.decode("utf-8", "replace")
    assert done.returncode == 1, log[-2000:]
    assert "agent" in log and "died: RuntimeError: cannot handle b'poison'" in log
    assert time.monotonic() - started < 60
