"""What a rebuild counts and what ``memstream rebuild`` prints."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field
from tqdm import tqdm

Source = Literal["events", "messages"]


@dataclass
class RebuildCounts:
    """Tallies every part of a rebuild adds to; the report copies them as they are."""

    records_read: int = 0
    skipped_erased: int = 0
    skipped_superseded: int = 0
    invalid: int = 0
    written: int = 0
    deleted: int = 0
    windows: int = 0
    windows_failed: int = 0
    carried_over: int = 0


class LLMReport(BaseModel):
    calls: int = Field(description="New model calls (paid).")
    cached: int = Field(description="Answers served by the response cache (free).")
    tokens: int


class RebuildReport(BaseModel):
    """What ``memstream rebuild`` prints (JSON)."""

    source: Source
    reembed: bool
    version: int
    previous: int | None = Field(description="The version that was live before the switch.")
    dropped: list[int] = Field(description="Versions dropped: unfinished ones, and --drop-old.")
    restarted: bool = Field(description="An unfinished rebuild was found and started over.")
    records_read: int
    skipped_erased: int = Field(description="Records of forgotten users, skipped.")
    skipped_superseded: int = Field(description="Events of replaced generations, skipped.")
    invalid: int = Field(description="Records that do not decode (they are in the DLQ).")
    memories: int = Field(description="Memories in the new version when it was switched.")
    written: int
    deleted: int
    windows: int = 0
    windows_failed: int = 0
    windows_left_open: int = Field(0, description="Still open in the live worker; it writes them.")
    carried_over: int = Field(0, description="Manual and boundary events copied from live.")
    llm: LLMReport | None = None
    seconds: float = Field(description="All of it, the settle time after the switch included.")
    replay_seconds: float = Field(description="From the start to the switch.")
    memories_per_second: float = Field(description="Memories written per replay second.")


class Progress:
    """A progress bar with rate and ETA on stderr (or nothing)."""

    def __init__(self, enabled: bool, label: str, total: int | None, unit: str) -> None:
        self._bar = (
            tqdm(total=total, desc=label, unit=unit, unit_scale=True, file=sys.stderr)
            if enabled
            else None
        )

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
