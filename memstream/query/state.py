"""What every route depends on: one :class:`Service` per app, and owner access as a
dependency (a key may touch only its owners' data). Dependencies are ``async``: FastAPI runs
a plain function in a thread, a hop the hot path does not need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.embedder.batching import QueryEmbedder
from memstream.llm import LLMClient
from memstream.metrics import ServiceMetrics
from memstream.query.auth import AccessControl, ApiKey
from memstream.query.chat import RecentTurns
from memstream.query.log_writer import LogWriter
from memstream.query.retriever import Retriever
from memstream.schemas.common import ID_PATTERN
from memstream.sinks import MemoryStore

IdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
MemoryIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@dataclass
class Service:
    settings: Settings
    access: AccessControl
    metrics: ServiceMetrics
    retriever: Retriever
    log_writer: LogWriter
    chat_llm: LLMClient | None
    recent_turns: RecentTurns = field(default_factory=RecentTurns)
    store: MemoryStore | None = None
    embedder: Embedder | None = None
    queries: QueryEmbedder | None = None

    def serve(self, store: MemoryStore, embedder: Embedder) -> None:
        """Ready to answer: the store is open and queries are embedded in batches."""
        self.store, self.embedder = store, embedder
        self.queries = QueryEmbedder(embedder, max_batch=self.settings.api.embed_batch)

    def ready(self) -> tuple[MemoryStore, Embedder, QueryEmbedder]:
        assert self.store is not None and self.embedder is not None and self.queries is not None
        return self.store, self.embedder, self.queries


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


@dataclass(frozen=True)
class Caller:
    """The caller's key, checked against the owner a request body names."""

    key: str | None
    access: AccessControl

    def allow(self, owner_id: str) -> None:
        self.access.check(self.key, owner_id)


async def caller(key: ApiKey, service: ServiceDep) -> Caller:
    return Caller(key, service.access)


CallerDep = Annotated[Caller, Depends(caller)]


async def path_owner(owner_id: IdPath, key: ApiKey, service: ServiceDep) -> None:
    """Routes under ``/v1/users/{owner_id}/…``: the key must be allowed that owner."""
    service.access.check(key, owner_id)
