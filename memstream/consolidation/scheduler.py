"""When reflection is due: per user, enough unreflected observations and not too recently.

In-process state owned by the worker that consumes the user's jobs partition. Losing it
(crash, rebalance) loses nothing: the counts are re-read from the store the next time a job
of that user runs, and a reflection job re-checks the store before calling the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReflectionScheduler:
    threshold: int
    min_interval: float
    unreflected: dict[str, int] = field(default_factory=dict)
    last_requested: dict[str, float] = field(default_factory=dict)

    def knows(self, key: str) -> bool:
        return key in self.unreflected

    def set_count(self, key: str, count: int) -> None:
        self.unreflected[key] = max(0, count)

    def add(self, key: str, new_observations: int) -> None:
        self.unreflected[key] = self.unreflected.get(key, 0) + max(0, new_observations)

    def take_due(self, now: float) -> list[tuple[str, int]]:
        """Users due now, each marked requested (count reset until the job reports back)."""
        due: list[tuple[str, int]] = []
        for key, count in self.unreflected.items():
            if count < self.threshold:
                continue
            last = self.last_requested.get(key)
            if last is not None and now - last < self.min_interval:
                continue
            due.append((key, count))
        for key, _ in due:
            self.unreflected[key] = 0
            self.last_requested[key] = now
        return due
