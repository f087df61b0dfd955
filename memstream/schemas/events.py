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


class MemoryEvent(BaseModel):
    """A store change. Consumers dedupe on (memory_id, version)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    event_type: MemoryEventType
    owner_id: Id
    user_id: Id
    memory_id: str
    version: int = Field(ge=1)
    memory: MemoryNode | None = Field(None, description="Full node (with vector) for upserts.")
    job_id: str | None = None
    cause: str = Field("consolidate", description="What produced the change.")
    produced_at: datetime = Field(default_factory=utcnow)

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
