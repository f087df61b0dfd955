"""Memory events on ``memstream.memories``: the replayable log of every store change."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from memstream.schemas.common import Id, utcnow
from memstream.schemas.memory import MemoryNode


class MemoryEventType(StrEnum):
    upsert = "upsert"
    delete = "delete"
    forget = "forget"
    """A tombstone: the user was erased; replays skip everything of theirs before it."""


class MemoryEvent(BaseModel):
    """A store change. Consumers dedupe on (memory_id, version)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    event_type: MemoryEventType
    owner_id: Id
    user_id: Id
    memory_id: str = Field(description="Empty for a forget tombstone (it covers the user).")
    version: int = Field(ge=1)
    memory: MemoryNode | None = Field(None, description="Full node (with vector) for upserts.")
    job_id: str | None = None
    cause: str = Field("consolidate", description="What produced the change.")
    produced_at: datetime = Field(default_factory=utcnow)
    generation: int | None = Field(
        None,
        description="Set on events written by a rebuild from messages (its store version); "
        "they replace the earlier events once that generation's switch marker is on the log.",
    )

    @classmethod
    def upsert(cls, node: MemoryNode, job_id: str | None, cause: str) -> MemoryEvent:
        return cls(
            event_type=MemoryEventType.upsert,
            owner_id=node.owner_id,
            user_id=node.user_id,
            memory_id=node.memory_id,
            version=node.version,
            memory=node,
            job_id=job_id,
            cause=cause,
        )

    @classmethod
    def delete(cls, node: MemoryNode, job_id: str | None, cause: str) -> MemoryEvent:
        """Removal; its version is one above the last, so it wins over replayed upserts."""
        return cls(
            event_type=MemoryEventType.delete,
            owner_id=node.owner_id,
            user_id=node.user_id,
            memory_id=node.memory_id,
            version=node.version + 1,
            job_id=job_id,
            cause=cause,
        )

    @classmethod
    def tombstone(cls, owner_id: str, user_id: str, job_id: str, at: datetime) -> MemoryEvent:
        return cls(
            event_type=MemoryEventType.forget,
            owner_id=owner_id,
            user_id=user_id,
            memory_id="",
            version=1,
            job_id=job_id,
            cause="forget",
            produced_at=at,
        )


class GenerationSwitch(BaseModel):
    """On every partition of the events topic when a rebuild from messages goes live: from
    here on, the events of ``generation`` replace every untagged event before this marker.
    Later untagged events (the workers' writes after the switch) extend that generation."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    event_type: Literal["switch"] = "switch"
    generation: int = Field(ge=1)
    produced_at: datetime = Field(default_factory=utcnow)
