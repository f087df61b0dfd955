"""What a benchmark reads off a running process: its memory (from /proc) and the counters
on a Prometheus text page."""

from __future__ import annotations

from pathlib import Path


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def prometheus_counters(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text page."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            out[name] = float(value)
    return out
