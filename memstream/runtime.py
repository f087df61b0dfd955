"""Process-level helpers shared by the long-running processes (worker, query service,
the embedded stack): garbage-collector tuning, free ports."""

from __future__ import annotations

import gc
import socket

#: Young objects are collected every this many net allocations (CPython's default: 700).
GC_YOUNG_THRESHOLD = 100_000


def tune_gc() -> None:
    """Call once start-up is done (modules imported, model loaded).

    What is alive then lives as long as the process, so it is frozen out of every later
    collection; and young objects are collected every 100k allocations instead of 700. A
    worker holds every message of every open window, hundreds of thousands of long-lived
    objects that the default thresholds walk again and again: ~20% of the ingest path's CPU
    (``memstream bench ingest``: 8.2k → 10.1k messages/s with this alone).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (settings use 0 for "pick one")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
