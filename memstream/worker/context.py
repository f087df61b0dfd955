"""What the worker's agents share: settings, the store, the embedder and model, counters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from memstream.config import Settings
from memstream.consolidation.scheduler import ReflectionScheduler
from memstream.embedder import Embedder
from memstream.llm import LLMClient, LLMUsage
from memstream.metrics import quantile
from memstream.sinks import MemoryStore


@dataclass
class WorkerStats:
    """In-process counters, served as JSON on the worker's web port (``/stats/``)."""

    started: float = field(default_factory=time.time)
    counters: Counter[str] = field(default_factory=Counter)
    dlq_by_reason: Counter[str] = field(default_factory=Counter)
    windows_by_trigger: Counter[str] = field(default_factory=Counter)
    #: Recent time-to-memory samples (ms): a window's first arrival -> its memories written.
    time_to_memory_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    llm: LLMUsage = field(default_factory=LLMUsage)

    def as_dict(self) -> dict[str, Any]:
        samples = list(self.time_to_memory_ms)
        return {
            "uptime_s": round(time.time() - self.started, 3),
            **dict(self.counters),
            "dlq_by_reason": dict(self.dlq_by_reason),
            "windows_by_trigger": dict(self.windows_by_trigger),
            "time_to_memory_ms": {
                "samples": len(samples),
                "p50": _rounded(quantile(samples, 0.50)),
                "p95": _rounded(quantile(samples, 0.95)),
            },
            "llm": self.llm.as_dict(),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class WorkerContext:
    settings: Settings
    store: MemoryStore
    embedder: Embedder
    stats: WorkerStats = field(default_factory=WorkerStats)
    llm: LLMClient | None = None
    scheduler: ReflectionScheduler | None = None
    _opened: bool = False
    _open_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ensure_store(self) -> MemoryStore:
        """Open the store once, from whichever agent needs it first (inside Faust's loop)."""
        async with self._open_lock:
            if not self._opened:
                await self.store.open()
                self._opened = True
                await self.store.check_embedder(self.embedder.model_id)
        return self.store

    async def close_store(self) -> None:
        async with self._open_lock:
            if self._opened:
                await self.store.close()
                self._opened = False
            if self.llm is not None:
                await self.llm.close()
                self.llm = None
