"""Real servers for tests: tansu (Kafka protocol) and noida-db (Elasticsearch 8 API)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from memstream.embedded import free_port, start_tansu, stop, wait_port


class Tansu:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc = start_tansu(self.port, workdir / "tansu.log")

    def close(self) -> None:
        stop(self.proc)

    async def create_topic(self, name: str, partitions: int = 1) -> None:
        """Topics are made explicitly: no client in a memstream process creates one by using
        it (``memstream.streams.kafka``)."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()


class Noida:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = workdir / "noida"
        data.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("noida-db") or str(Path(sys.executable).with_name("noida-db"))
        self._log = (workdir / "noida.log").open("ab")
        self.proc = subprocess.Popen(
            [
                exe,
                "start",
                "--data-dir",
                str(data),
                "--only",
                "elasticsearch",
                "--elasticsearch-port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_port("127.0.0.1", self.port, timeout=60, proc=self.proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("noida-db did not answer")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop(self.proc)
        self._log.close()
