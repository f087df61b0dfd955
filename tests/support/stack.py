"""A whole running stack for client-side tests: broker, worker and query service as real
processes on free ports (SQLite store, LLM-free, one-second windows)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from memstream import client as ms
from memstream.embedded import WorkerProcess, free_port, spawn, stop, wait_port
from tests.support.pipeline import pipeline_env, settings_from
from tests.support.servers import Tansu


class Stack:
    def __init__(self, tmp: Path, *, api_keys: dict[str, list[str]] | None = None) -> None:
        self.broker = Tansu(tmp)
        self.port = free_port()
        extra = {"MEMSTREAM_WINDOW__IDLE_SECONDS": "1", "MEMSTREAM_API__PORT": str(self.port)}
        if api_keys:
            extra["MEMSTREAM_API__API_KEYS"] = json.dumps(api_keys)
        self.env = pipeline_env(
            bootstrap=self.broker.bootstrap, data_dir=tmp, backend="sqlite", extra=extra
        )
        self.settings = settings_from(self.env)
        self.worker = WorkerProcess(self.env, tmp / "worker.log")
        self.service = spawn(
            [sys.executable, "-m", "memstream", "serve", "--port", str(self.port)],
            {**os.environ, **self.env},
            tmp / "service.log",
        )
        wait_port("127.0.0.1", self.port, timeout=90, proc=self.service)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        stop(self.service)
        if self.worker.alive():
            self.worker.stop(timeout=60)
        self.broker.close()


def wait_memories(client: ms.Client, owner: str, user: str, n: int, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if client.list(owner, user).total >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"{n} memories of {owner}/{user} not there in {within} s")
