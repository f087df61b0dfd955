"""Per-user windows: pure functions deciding when a window closes. No I/O, no Faust.

Event-time rules (count, tokens, a gap between two messages' ``sent_at``) make window
boundaries reproducible when the log is replayed; wall-clock rules (idle since the last
arrival, age since the first) close the tail of a conversation that has gone quiet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memstream.config import WindowSettings
from memstream.schemas.jobs import ConsolidationJob, WindowTrigger, job_id_for
from memstream.schemas.messages import ChatMessage, Role


def estimate_tokens(text: str) -> int:
    """Cheap token estimate: ~4 characters per token for alphabetic text, 1 per CJK character."""
    if text.isascii():  # the common case, without a Python-level pass over the characters
        return (len(text) + 3) // 4 + 1
    cjk = sum(1 for ch in text if "\u3000" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    return cjk + max(0, len(text) - cjk + 3) // 4 + 1


#: What a message adds to its job's record beyond its own JSON (fields serialised with their
#: defaults, separators): a bound, so that a job of ``max_bytes`` of messages fits.
MESSAGE_OVERHEAD_BYTES = 256


class WindowMessage(NamedTuple):
    """A message held in an open window, compactly: what the window rules read, and the
    validated message as JSON. A parsed ``ChatMessage`` costs ~1.6 KB; this, ~0.4 KB, and a
    worker holds every message of every open window."""

    message_id: str
    sent_at: datetime
    tokens: int
    raw: bytes

    @classmethod
    def of(cls, message: ChatMessage, raw: bytes | None = None) -> WindowMessage:
        """``raw``: the JSON ``message`` was validated from, kept as it is (parsing it again
        gives the same message) instead of serialising the message anew."""
        return cls(
            message.message_id,
            message.sent_at,
            estimate_tokens(message.content),
            raw if raw is not None else message.model_dump_json().encode(),
        )

    def message(self) -> ChatMessage:
        return ChatMessage.model_validate_json(self.raw)

    @property
    def size(self) -> int:
        """Bytes this message adds to its window's job."""
        return len(self.raw) + MESSAGE_OVERHEAD_BYTES


class WindowState(BaseModel):
    """The open window of one user (in the worker's memory; the log is its durable copy)."""

    model_config = ConfigDict(extra="forbid")

    window_no: int = 0
    messages: list[WindowMessage] = Field(default_factory=list)
    ids: frozenset[str] = Field(frozenset(), repr=False, description="Of ``messages``.")
    tokens: int = 0
    size: int = 0
    """Bytes of the window's job (see :attr:`WindowMessage.size`)."""
    opened_at: datetime | None = None  # wall clock at the first message
    last_seen_at: datetime | None = None  # wall clock at the latest message

    @field_validator("messages", mode="before")
    @classmethod
    def _compact(cls, value: object) -> object:
        if isinstance(value, list):
            return [WindowMessage.of(m) if isinstance(m, ChatMessage) else m for m in value]
        return value

    @model_validator(mode="after")
    def _index(self) -> WindowState:
        # A scan of the messages per added message made windowing quadratic in window size.
        if len(self.ids) != len(self.messages):
            self.ids = frozenset(m.message_id for m in self.messages)
        return self

    @property
    def is_empty(self) -> bool:
        return not self.messages

    def has(self, message_id: str) -> bool:
        return message_id in self.ids


def close_window(state: WindowState, trigger: WindowTrigger, now: datetime) -> ConsolidationJob:
    """The job for a non-empty window."""
    messages = [m.message() for m in state.messages]
    first = messages[0]
    return ConsolidationJob(
        job_id=job_id_for(first.owner_id, first.user_id, [m.message_id for m in messages]),
        owner_id=first.owner_id,
        user_id=first.user_id,
        window_no=state.window_no,
        trigger=trigger,
        messages=messages,
        opened_at=state.opened_at or now,
        closed_at=now,
    )


def early_job(
    state: WindowState, added: Sequence[ChatMessage], now: datetime
) -> ConsolidationJob | None:
    """LLM-free mode's provisional job for messages just added to an open window: those
    still in it, after the turn just before the first of them when that is another
    person's (the question a user message answers). None when none of them is the user's.
    Its id differs from any window's: the window's own job follows when it closes."""
    picked = [m for m in added if state.has(m.message_id)]
    if not any(m.role is Role.user for m in picked):
        return None
    position = {m.message_id: i for i, m in enumerate(state.messages)}
    first_at = min(position[m.message_id] for m in picked)
    if first_at > 0:
        before = state.messages[first_at - 1].message()
        if before.role is not Role.user and before.message_id not in {m.message_id for m in picked}:
            picked.insert(0, before)
    first = picked[0]
    ids = [m.message_id for m in picked]
    return ConsolidationJob(
        job_id=job_id_for(first.owner_id, first.user_id, ["early", *ids]),
        owner_id=first.owner_id,
        user_id=first.user_id,
        window_no=state.window_no,
        trigger=WindowTrigger.early,
        messages=picked,
        opened_at=state.opened_at or now,
        closed_at=now,
    )


def next_window(state: WindowState) -> WindowState:
    return WindowState(window_no=state.window_no + 1)


def add_message(
    state: WindowState,
    message: ChatMessage,
    now: datetime,
    limits: WindowSettings,
    raw: bytes | None = None,
) -> tuple[WindowState, list[ConsolidationJob]]:
    """Add one message; returns the new state and the jobs of any windows this closed.
    ``raw``: the record value ``message`` was validated from (see :meth:`WindowMessage.of`).

    A message already in the open window (a redelivery) changes nothing.
    """
    if state.has(message.message_id):
        return state, []
    jobs: list[ConsolidationJob] = []
    if not state.is_empty:
        # The same limits in event time as the timer applies in wall-clock time, so a replay
        # of the log cuts the windows where the live run did.
        if message.sent_at - state.messages[-1].sent_at > timedelta(seconds=limits.idle_seconds):
            jobs.append(close_window(state, WindowTrigger.idle_gap, now))
            state = next_window(state)
        elif message.sent_at - state.messages[0].sent_at >= timedelta(
            seconds=limits.max_age_seconds
        ):
            jobs.append(close_window(state, WindowTrigger.max_age, now))
            state = next_window(state)
    held = WindowMessage.of(message, raw)
    tokens, size = held.tokens, held.size
    if not state.is_empty:
        # Close before a message that would take the window past a bound: a job never
        # exceeds max_bytes (its record must fit the broker) unless one message alone does.
        if state.tokens + tokens > limits.max_tokens:
            jobs.append(close_window(state, WindowTrigger.max_tokens, now))
            state = next_window(state)
        elif state.size + size > limits.max_bytes:
            jobs.append(close_window(state, WindowTrigger.max_bytes, now))
            state = next_window(state)
    state = state.model_copy(
        update={
            "messages": [*state.messages, held],
            "ids": state.ids | {message.message_id},
            "tokens": state.tokens + tokens,
            "size": state.size + size,
            "opened_at": state.opened_at or now,
            "last_seen_at": now,
        }
    )
    if len(state.messages) >= limits.max_messages:
        jobs.append(close_window(state, WindowTrigger.max_messages, now))
        state = next_window(state)
    elif state.tokens >= limits.max_tokens:
        jobs.append(close_window(state, WindowTrigger.max_tokens, now))
        state = next_window(state)
    elif state.size >= limits.max_bytes:
        jobs.append(close_window(state, WindowTrigger.max_bytes, now))
        state = next_window(state)
    return state, jobs


def advance_after(state: WindowState, job: ConsolidationJob) -> WindowState:
    """The window after ``job`` was emitted: messages that arrived meanwhile stay open."""
    if state.window_no != job.window_no:
        return state  # already advanced by the ingest path
    emitted = {m.message_id for m in job.messages}
    remaining = [m for m in state.messages if m.message_id not in emitted]
    if not remaining:
        return next_window(state)
    return WindowState(
        window_no=state.window_no + 1,
        messages=remaining,
        tokens=sum(m.tokens for m in remaining),
        size=sum(m.size for m in remaining),
        opened_at=state.last_seen_at,
        last_seen_at=state.last_seen_at,
    )


def due_trigger(state: WindowState, now: datetime, limits: WindowSettings) -> WindowTrigger | None:
    """Wall-clock check run by the timer: has this window gone idle or grown too old?"""
    if state.is_empty or state.opened_at is None or state.last_seen_at is None:
        return None
    if now - state.opened_at >= timedelta(seconds=limits.max_age_seconds):
        return WindowTrigger.max_age
    if now - state.last_seen_at >= timedelta(seconds=limits.idle_seconds):
        return WindowTrigger.idle_gap
    return None
