"""``memstream up`` owns its children: they end when it ends, even by SIGKILL; and two stacks
run side by side when the default ports are taken."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from memstream.embedded import free_port

pytestmark = pytest.mark.servers


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMSTREAM_")}


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Up:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.log = data_dir.with_suffix(".out")
        self.out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memstream", "up", "--data-dir", str(data_dir), *args],
            env=_env(),
            stdout=self.out,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 150) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if "ready; Ctrl-C stops everything" in text:
                found = re.search(r"service  (http://127\.0\.0\.1:\d+)", text)
                assert found, text
                return found.group(1)
            assert self.proc.poll() is None, text
            time.sleep(0.3)
        raise AssertionError(f"not ready in {timeout} s:\n{self.text()}")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.out.close()


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaps counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_sigkill_of_up_leaves_no_child(tmp_path: Path) -> None:
    up = Up(
        tmp_path / "data",
        "--api-port",
        str(free_port()),
        "--broker-port",
        str(free_port()),
        "--worker-port",
        str(free_port()),
    )
    try:
        up.wait_ready()
        children = up.children()
        assert len(children) == 3, children  # broker, worker, service
        up.proc.send_signal(signal.SIGKILL)
        up.proc.wait(timeout=10)
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [pid for pid in children if alive(pid)]
        assert not survivors, f"orphans left: {survivors}"
    finally:
        up.close()


@contextmanager
def taken(port: int) -> Iterator[None]:
    """Hold ``port`` (or find it held by someone else already: taken either way)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            pass
        yield
    finally:
        sock.close()


def test_two_stacks_side_by_side_with_the_default_ports_taken(tmp_path: Path) -> None:
    with ExitStack() as stack:
        for port in (9092, 8080, 6066):
            stack.enter_context(taken(port))
        first, second = Up(tmp_path / "a"), Up(tmp_path / "b")
        stack.callback(first.close)
        stack.callback(second.close)
        urls = {first.wait_ready(), second.wait_ready()}
        assert len(urls) == 2 and not any(u.endswith(":8080") for u in urls)
        for url in urls:
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        text = first.text()
        assert "port 9092 is in use; using" in text and "port 8080 is in use; using" in text

        # A port asked for explicitly that is taken: one line, the flag to change, exit 1.
        busy = subprocess.run(
            [sys.executable, "-m", "memstream", "up", "--data-dir", str(tmp_path / "c"),
             "--api-port", "8080"],
            env=_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines() == [
            "Error: port 8080 (service) is in use: choose another --api-port"
        ]
