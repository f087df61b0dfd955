"""Memory nodes: MemoryScope's node, made bi-temporal and traceable to its source messages."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from memstream.schemas.common import Id, SparseTerms, Timestamp, Vector


class MemoryType(StrEnum):
    observation = "observation"
    obs_customized = "obs_customized"
    insight = "insight"


class StoreStatus(StrEnum):
    valid = "valid"
    expired = "expired"


class EventTime(BaseModel):
    """Inferred time of the event a memory speaks of; -1 = unknown or recurring."""

    model_config = ConfigDict(frozen=True)

    year: int = -1
    month: int = -1
    day: int = -1
    hour: int = -1
    week: int = -1
    weekday: int = -1

    @classmethod
    def of(cls, when: datetime) -> EventTime:
        iso = when.isocalendar()
        return cls(
            year=when.year,
            month=when.month,
            day=when.day,
            hour=when.hour,
            week=iso.week,
            weekday=iso.weekday - 1,
        )


class MemoryNode(BaseModel):
    """One memory. ``version`` only grows, so a replayed write never regresses a newer one."""

    model_config = ConfigDict(extra="forbid")

    memory_id: str = Field(max_length=64)
    owner_id: Id
    user_id: Id
    memory_type: MemoryType
    content: str = Field(description="The text that is embedded and searched.")
    key: str | None = Field(None, description="Insight subject, e.g. 'favourite sport'.")
    value: str | None = Field(None, description="Insight value.")
    store_status: StoreStatus = StoreStatus.valid
    obs_reflected: bool = False
    obs_updated: bool = False
    message_time: Timestamp = Field(description="When the source message was sent.")
    valid_from: Timestamp = Field(description="When the fact became true (event time).")
    valid_to: Timestamp | None = Field(None, description="Set when contradicted; kept as history.")
    recorded_at: Timestamp = Field(description="Processing time of this version.")
    event_time: EventTime = Field(default_factory=EventTime)
    source_message_ids: list[str] = Field(default_factory=list)
    source_text: str | None = None
    context: str | None = Field(
        None,
        description="The turn this memory's message answered (indexed for recall, never shown "
        "as its content): 'Went hiking with my sister' is found by 'what did she do last "
        "weekend?' through the question it replied to.",
        max_length=2_000,
    )
    keywords: list[str] = Field(default_factory=list)
    language: str | None = None
    speaker: str | None = None
    version: int = Field(1, ge=1)
    embedding_model: str | None = None
    vector: Vector | None = None
    sparse: SparseTerms | None = Field(
        None, description="Learned sparse terms (SPLADE vocabulary id → weight) for recall."
    )

    @property
    def dt(self) -> str:
        """Day of the source message, MemoryScope's ``dt``."""
        return self.message_time.strftime("%Y%m%d")


def memory_id(owner_id: str, user_id: str, source_message_ids: Sequence[str], ordinal: int) -> str:
    """Deterministic id, so a replayed or duplicated job writes the same memory again."""
    material = "\x1f".join([owner_id, user_id, *sorted(source_message_ids), str(ordinal)])
    return hashlib.blake2b(material.encode("utf-8"), digest_size=16).hexdigest()
