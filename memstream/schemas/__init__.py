"""Schemas imported by every part: the contracts at each process boundary."""

from memstream.schemas.common import Id, Timestamp, Vector, utcnow
from memstream.schemas.dlq import DeadLetter, DlqReason
from memstream.schemas.events import GenerationSwitch, MemoryEvent, MemoryEventType
from memstream.schemas.jobs import (
    AddMemoryJob,
    AnyJob,
    ConsolidationJob,
    DeleteMemoriesJob,
    ForgetJob,
    Job,
    ReflectionJob,
    WindowTrigger,
    job_id_for,
    parse_job,
    reflection_job_id,
)
from memstream.schemas.memory import EventTime, MemoryNode, MemoryType, StoreStatus, memory_id
from memstream.schemas.messages import ChatMessage, Role, split_user_key, user_key

__all__ = [
    "AddMemoryJob",
    "AnyJob",
    "ChatMessage",
    "ConsolidationJob",
    "DeadLetter",
    "DeleteMemoriesJob",
    "DlqReason",
    "EventTime",
    "ForgetJob",
    "GenerationSwitch",
    "Id",
    "Job",
    "MemoryEvent",
    "MemoryEventType",
    "MemoryNode",
    "MemoryType",
    "ReflectionJob",
    "Role",
    "StoreStatus",
    "Timestamp",
    "Vector",
    "WindowTrigger",
    "job_id_for",
    "memory_id",
    "parse_job",
    "reflection_job_id",
    "split_user_key",
    "user_key",
    "utcnow",
]
