"""Jobs on ``memstream.jobs``: everything that changes one user's memories, serialised per key."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from memstream.schemas.common import Id, Timestamp, utcnow
from memstream.schemas.messages import ChatMessage, user_key


class WindowTrigger(StrEnum):
    """Why a window closed (a metrics label and an audit fact)."""

    max_messages = "max_messages"
    max_tokens = "max_tokens"
    max_bytes = "max_bytes"
    idle_gap = "idle_gap"
    max_age = "max_age"
    shutdown = "shutdown"
    #: Not a close: LLM-free mode indexes a window's new user messages at once (provisional
    #: memories, version 1); the window's close completes them with their exchange (version 2).
    early = "early"


class UserJob(BaseModel):
    """What every job has: an id, and the user whose memories it changes (the topic key:
    one user's jobs are serialised on one partition)."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    owner_id: Id
    user_id: Id

    @property
    def key(self) -> str:
        return user_key(self.owner_id, self.user_id)


class ConsolidationJob(UserJob):
    """A closed window of one user's messages, to consolidate."""

    job_type: Literal["consolidate"] = "consolidate"
    window_no: int = Field(ge=0)
    trigger: WindowTrigger
    messages: list[ChatMessage] = Field(min_length=1)
    opened_at: datetime
    closed_at: datetime = Field(default_factory=utcnow)


class ReflectionJob(UserJob):
    """Put on the jobs topic by the reflection timer when a user has enough new observations."""

    job_type: Literal["reflect"] = "reflect"
    unreflected: int = Field(ge=0, description="Unreflected observations seen by the timer.")
    requested_at: datetime = Field(default_factory=utcnow)


class AddMemoryJob(UserJob):
    """A memory added by hand (``obs_customized``), through the log like every change."""

    job_type: Literal["add"] = "add"
    memory_id: str
    content: Annotated[str, Field(min_length=1, max_length=4000)]
    keywords: list[str] = Field(default_factory=list, max_length=20)
    valid_from: Timestamp | None = None
    requested_at: datetime = Field(default_factory=utcnow)


class DeleteMemoriesJob(UserJob):
    """Delete some memories of a user (``memory_ids``) or all of them (``None``)."""

    job_type: Literal["delete"] = "delete"
    memory_ids: list[str] | None = Field(None, max_length=10_000)
    requested_at: datetime = Field(default_factory=utcnow)


class ForgetJob(UserJob):
    """Erase a user: every memory, and a tombstone on the memory log so replays skip the
    user's earlier messages and memories."""

    job_type: Literal["forget"] = "forget"
    requested_at: datetime = Field(default_factory=utcnow)


AnyJob = ConsolidationJob | ReflectionJob | AddMemoryJob | DeleteMemoriesJob | ForgetJob

Job = Annotated[AnyJob, Field(discriminator="job_type")]


_JOB_ADAPTER: TypeAdapter[AnyJob] = TypeAdapter(cast(Any, Job))


def parse_job(raw: bytes | str) -> AnyJob:
    """Any job on the topic, by its ``job_type``; raises pydantic's ``ValidationError``."""
    return _JOB_ADAPTER.validate_json(raw)


def reflection_job_id(owner_id: str, user_id: str, requested_at: datetime) -> str:
    material = "\x1f".join([owner_id, user_id, "reflect", requested_at.isoformat()])
    return hashlib.blake2b(material.encode("utf-8"), digest_size=12).hexdigest()


def job_id_for(owner_id: str, user_id: str, message_ids: list[str]) -> str:
    """Same messages, same job id: a re-emitted window is recognisably the same job."""
    material = "\x1f".join([owner_id, user_id, *message_ids])
    return hashlib.blake2b(material.encode("utf-8"), digest_size=12).hexdigest()
