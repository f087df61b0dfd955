"""A bare Faust agent that only iterates a topic: the baseline for ``memstream bench ingest``.

Run as ``python -m memstream.evaluation.bare_faust BOOTSTRAP TOPIC PARTITIONS EXPECT GROUP OUT
[worker-consumer]``; writes ``{"messages": n, "seconds": s}`` (first to last message) to the file
OUT and exits. Stock Faust unless ``worker-consumer`` is given: then the agent runs on the
worker's own consumer (batch delivery, ``worker/transport.py``), to show what that part is worth
apart from the ingest agent's own work.
"""

from __future__ import annotations

import json
import os
import sys
import time

import faust


def main() -> None:
    bootstrap, topic_name, partitions, expect, group, out = sys.argv[1:7]
    if sys.argv[7:] == ["worker-consumer"]:
        from memstream.worker.transport import use_fetch_max_wait

        use_fetch_max_wait(100)
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=os.environ.get("TMPDIR", "/tmp") + f"/{group}",
        topic_partitions=int(partitions),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10,
        broker_rebalance_timeout=10,
        web_enabled=False,
    )
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
    state = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def iterate(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            if state["n"] == 0:
                state["first"] = time.perf_counter()
            state["n"] += 1
            if state["n"] >= int(expect):
                seconds = time.perf_counter() - state["first"]
                with open(out, "w", encoding="utf-8") as fh:  # noqa: ASYNC230 - exits next
                    json.dump({"messages": state["n"], "seconds": seconds}, fh)
                os._exit(0)  # the measurement is done; skip Faust's shutdown

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
