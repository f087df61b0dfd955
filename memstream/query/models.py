"""Typed request and response bodies of the query service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import to_json

from memstream.schemas.common import Id, Timestamp
from memstream.schemas.dlq import DlqReason
from memstream.schemas.memory import EventTime, MemoryNode, MemoryType, StoreStatus
from memstream.schemas.messages import ChatMessage
from memstream.search import Ranked, RetrievalMode, TimeRange


class RecallOptions(BaseModel):
    """How memories are recalled: the same for ``/v1/retrieve`` and ``/v1/chat``."""

    retrieval: RetrievalMode = Field(RetrievalMode.hybrid, description="Recall channels to use.")
    include_expired: bool = Field(
        False, description="Also recall expired (contradicted) memories: the history."
    )
    rerank: bool | None = Field(
        None, description="false skips the configured reranker for this request."
    )


class RetrieveRequest(RecallOptions):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "owner_id": "demo",
                    "user_id": "alice",
                    "query": "What sport do I play?",
                    "top_k": 5,
                }
            ]
        },
    )

    owner_id: Id
    user_id: Id
    query: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    top_k: int | None = Field(None, ge=1, le=1000, description="Default: the service's setting.")
    at: AwareDatetime | None = Field(
        None,
        description="The time the query is asked at (default: now); time words such as "
        "'last weekend' or '上周末' resolve relative to it.",
    )


class TimeRangeOut(BaseModel):
    """A time range the query speaks of; memories whose time falls in it are boosted."""

    text: str
    start: datetime
    end: datetime


class Why(BaseModel):
    """How a result was ranked: its place and score in each recall channel, and its weight."""

    rrf: float
    type_weight: float
    vector_rank: int | None
    vector_score: float | None
    text_rank: int | None
    text_score: float | None
    sparse_rank: int | None = None
    sparse_score: float | None = None
    recency_boost: float = 1.0
    time_boost: float = 1.0
    time_match: TimeRangeOut | None = None
    rerank_score: float | None = None
    supersedes: str | None = Field(
        None, description="An older memory on the same subject this one was ranked above."
    )


class MemoryOut(BaseModel):
    """A memory as the API shows it (the vector is not sent)."""

    memory_id: str
    memory_type: MemoryType
    content: str
    key: str | None = None
    value: str | None = None
    store_status: StoreStatus
    message_time: datetime
    valid_from: datetime
    valid_to: datetime | None
    recorded_at: datetime
    event_time: EventTime
    source_message_ids: list[str]
    keywords: list[str]
    language: str | None
    speaker: str | None
    version: int

    @classmethod
    def of(cls, node: MemoryNode) -> MemoryOut:
        return cls.model_validate(node.model_dump(exclude={"vector"}), from_attributes=False)

    model_config = ConfigDict(extra="ignore")


class RetrievedMemory(MemoryOut):
    score: float
    why: Why

    @classmethod
    def ranked(cls, r: Ranked) -> RetrievedMemory:
        return cls.model_validate(retrieved_data(r))


_MEMORY_FIELDS = tuple(MemoryOut.model_fields)


def retrieved_data(r: Ranked) -> dict[str, Any]:
    """A :class:`RetrievedMemory` as plain data. Retrieval's hot path serialises these
    directly: building pydantic models costs ~10 µs each, 40 per request."""
    match = r.time_match
    return {
        **{name: getattr(r.node, name) for name in _MEMORY_FIELDS},
        "score": r.score,
        "why": {
            "rrf": r.rrf,
            "type_weight": r.type_weight,
            "vector_rank": r.vector_rank,
            "vector_score": r.vector_score,
            "text_rank": r.text_rank,
            "text_score": r.text_score,
            "sparse_rank": r.sparse_rank,
            "sparse_score": r.sparse_score,
            "recency_boost": r.recency_boost,
            "time_boost": r.time_boost,
            "time_match": None
            if match is None
            else {"text": match.text, "start": match.start, "end": match.end},
            "rerank_score": r.rerank_score,
            "supersedes": r.supersedes,
        },
    }


def retrieve_response_json(
    ranked: Sequence[Ranked],
    ranges: Sequence[TimeRange],
    prompt: str,
    took_ms: float,
    *,
    cut: int = 0,
    searched: str | None = None,
) -> bytes:
    """The body of a :class:`RetrieveResponse` (its documented schema; a test holds the two
    together)."""
    return to_json(
        {
            "memories": [retrieved_data(r) for r in ranked],
            "time_ranges": [{"text": t.text, "start": t.start, "end": t.end} for t in ranges],
            "prompt": prompt,
            "cut": cut,
            "searched": searched,
            "took_ms": took_ms,
        }
    )


class RetrieveResponse(BaseModel):
    memories: list[RetrievedMemory]
    time_ranges: list[TimeRangeOut] = Field(
        default_factory=list, description="Time ranges found in the query."
    )
    prompt: str = Field(description="One line per memory: `[YYYY-MM-DD HH:MM:SS Weekday] content`.")
    cut: int = Field(
        0,
        description="Results the relevance floor left out: fewer than top_k memories were "
        "relevant, and the rest is not padded with noise (api.relevance_floor).",
    )
    searched: str | None = Field(
        None,
        description="What the recall channels searched, when not the query itself: the "
        "user's own name is taken out (every memory searched is theirs).",
    )
    took_ms: float


class MemoryPage(BaseModel):
    memories: list[MemoryOut]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: str
    store: str
    embedder: str
    memories: int | None = Field(
        description="Memories in the store; only while no API keys are configured (with keys, "
        "health tells nothing about any tenant)."
    )


class ErrorBody(BaseModel):
    error: str
    detail: object | None = None


RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class AddMemoryRequest(BaseModel):
    """A memory added by hand (``obs_customized``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"content": "Alice is vegetarian.", "keywords": ["diet"]}]},
    )

    content: Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"\S")] = (
        Field(description="The memory's text: not blank.")
    )
    keywords: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=20
    )
    valid_from: Timestamp | None = Field(
        None, description="When it became true (default now), with a zone; 1970–2099."
    )
    request_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")] | None = (
        Field(None, description="Idempotency key: the same request id adds the same memory once.")
    )


class Accepted(BaseModel):
    """The change is on the log; the worker applies it in order with the user's other jobs."""

    job_id: str
    memory_id: str | None = None
    status: str = "accepted"


class Export(BaseModel):
    owner_id: str
    user_id: str
    exported_at: datetime
    memories: list[MemoryOut]


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: Annotated[str, StringConstraints(min_length=1, max_length=16000)]


class ChatRequest(RecallOptions):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"owner_id": "demo", "user_id": "alice", "message": "Any idea for dinner tonight?"}
            ]
        },
    )

    owner_id: Id
    user_id: Id
    message: Annotated[str, StringConstraints(min_length=1, max_length=16000)]
    speaker: Annotated[str, StringConstraints(max_length=200)] | None = None
    at: AwareDatetime | None = Field(None, description="The time of the message (default now).")
    history: list[ChatTurn] = Field(
        default_factory=list,
        max_length=50,
        description="Recent turns the client holds that may not be consolidated yet.",
    )
    top_k: int | None = Field(None, ge=1, le=100, description="Memories in the prompt.")
    remember: bool = Field(True, description="Put both turns on the messages topic.")
    stream: bool = Field(
        False,
        description="Answer as server-sent events, token by token: OpenAI-style "
        "`chat.completion.chunk` deltas; the last chunk carries `memstream` (the memories, "
        "the system prompt and the ids of the turns put on the log), then `data: [DONE]`.",
    )


class ChatResponse(BaseModel):
    answer: str
    memories: list[RetrievedMemory]
    system_prompt: str
    message_ids: list[str] = Field(description="Ids of the turns put on the log.")


#: Messages one ``POST /v1/messages`` may carry (bodies are bounded in bytes too).
MAX_MESSAGES_PER_REQUEST = 500
_EXAMPLE = {"messages": ChatMessage.model_json_schema()["examples"]}


class AddMessagesRequest(BaseModel):
    """Chat messages for the log, exactly as a producer would put them on
    ``memstream.messages`` (the ``ChatMessage`` contract). Each one is judged by the codec
    the worker uses, so a message refused here is one the worker would dead-letter."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    messages: list[Any] = Field(
        min_length=1,
        max_length=MAX_MESSAGES_PER_REQUEST,
        description="ChatMessage objects (schema: memstream/schemas/chat_message.schema.json, "
        "`memstream schema`); each is validated on its own.",
    )


class MessageVerdict(BaseModel):
    index: int = Field(description="Position in the request.")
    message_id: str | None = Field(None, description="The message's id, when it has one.")
    status: Literal["accepted", "duplicate", "rejected"]
    reason: DlqReason | None = Field(
        None, description="Why it was rejected: the same code the worker's DLQ would give."
    )
    detail: str | None = None


class AddMessagesResponse(BaseModel):
    """Accepted messages are on the log (acknowledged by the broker); the worker windows and
    consolidates them like any other. Re-sending a message (same id) is safe."""

    accepted: int
    rejected: int
    results: list[MessageVerdict]
