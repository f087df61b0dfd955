"""The retrieval query service (FastAPI): reads the store; writes only to the log (management
jobs, forget). Never imports the worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

import memstream
from memstream.config import Settings
from memstream.embedder import Embedder, load_embedder
from memstream.embedder.batching import QueryEmbedder
from memstream.llm import LLMClient, LLMError, load_llm
from memstream.metrics import CONTENT_TYPE, ObserveMiddleware, ServiceMetrics
from memstream.query.auth import AccessControl, ApiKey
from memstream.query.chat import RecentTurns, chat_messages
from memstream.query.models import (
    Accepted,
    AddMemoryRequest,
    ChatRequest,
    ChatResponse,
    ChatTurn,
    ErrorBody,
    Export,
    Health,
    MemoryOut,
    MemoryPage,
    RetrievedMemory,
    RetrieveRequest,
    RetrieveResponse,
    retrieve_response_json,
)
from memstream.rerank import Reranker, load_reranker
from memstream.runtime import tune_gc
from memstream.schemas import (
    AddMemoryJob,
    ChatMessage,
    DeleteMemoriesJob,
    ForgetJob,
    memory_id,
    user_key,
)
from memstream.schemas.common import ID_PATTERN
from memstream.schemas.memory import MemoryNode, MemoryType, StoreStatus
from memstream.search import render_prompt, resolve_time, retrieve
from memstream.sinks import MemoryFilter, MemoryStore, open_store
from memstream.streams.producer import MessageProducer

IdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
MemoryIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class LogWriter:
    """The service's way onto the log (management jobs, forget): one producer, started on
    first use so a read-only deployment never connects to Kafka."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: MessageProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> MessageProducer:
        async with self._lock:
            if self._producer is None:
                producer = MessageProducer(self._settings.kafka)
                try:
                    await asyncio.wait_for(producer.__aenter__(), timeout=10)
                except Exception as exc:
                    raise HTTPException(503, f"the message log is unavailable: {exc}") from exc
                self._producer = producer
            return self._producer

    async def send_job(self, job: AddMemoryJob | DeleteMemoriesJob) -> None:
        await (await self._get()).send_job(job)

    async def forget(self, job: ForgetJob) -> None:
        await (await self._get()).forget(job)

    async def send_messages(self, messages: list[ChatMessage]) -> None:
        await (await self._get()).send_many(messages)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.__aexit__(None, None, None)
            self._producer = None


def create_service(
    settings: Settings,
    *,
    store: MemoryStore | None = None,
    embedder: Embedder | None = None,
    llm: LLMClient | None = None,
    reranker: Reranker | None = None,
) -> FastAPI:
    """Build the app; store and embedder are created at startup unless given (tests, bench).
    The generation model (chat only) comes from the settings unless given."""
    chat_llm = llm if llm is not None else load_llm(settings.llm)
    reranker = reranker if reranker is not None else load_reranker(settings.rerank)
    owns_llm = llm is None
    recent_turns = RecentTurns()

    log_writer = LogWriter(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if store is not None and embedder is not None:
            app.state.queries = QueryEmbedder(embedder, max_batch=settings.api.embed_batch)
            yield  # given ready-made (and already open) by the caller
            await log_writer.close()
            if owns_llm and chat_llm is not None:
                await chat_llm.close()
            return
        emb = embedder or load_embedder(settings.embedder)
        st = store or open_store(settings.store, dimensions=emb.dimensions, serving=True)
        await st.open()
        app.state.embedder, app.state.store = emb, st
        app.state.queries = QueryEmbedder(emb, max_batch=settings.api.embed_batch)
        tune_gc()  # start-up is done: the model and modules are frozen out of collection
        try:
            yield
        finally:
            await log_writer.close()
            if owns_llm and chat_llm is not None:
                await chat_llm.close()
            if store is None:
                await st.close()

    app = FastAPI(
        title="memstream query service",
        version=memstream.__version__,
        description="Time-aware hybrid retrieval of long-term memories for LLM chatbots.",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody, "description": "Missing or unknown API key"},
            403: {"model": ErrorBody, "description": "The key may not access this owner"},
            413: {"model": ErrorBody, "description": "Request body too large"},
            422: {"model": ErrorBody, "description": "Invalid request"},
        },
    )
    if store is not None and embedder is not None:
        app.state.store, app.state.embedder = store, embedder
        app.state.queries = QueryEmbedder(embedder, max_batch=settings.api.embed_batch)
    metrics = ServiceMetrics()

    def embedding_counts() -> tuple[int, int]:
        queries: QueryEmbedder | None = getattr(app.state, "queries", None)
        return (queries.calls, queries.queries) if queries is not None else (0, 0)

    metrics.watch_embedding(embedding_counts)
    access = AccessControl(settings.api.api_keys)

    app.add_middleware(ObserveMiddleware, metrics=metrics, limit=settings.api.max_request_bytes)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> PlainTextResponse:
        """Prometheus text format: latency by route, memories returned."""
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"error": "invalid_request", "detail": errors})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)})

    def state(request: Request) -> tuple[MemoryStore, Embedder]:
        return request.app.state.store, request.app.state.embedder

    def recall(request: Request) -> tuple[MemoryStore, QueryEmbedder]:
        return request.app.state.store, request.app.state.queries

    @app.post("/v1/retrieve", response_model=RetrieveResponse, tags=["retrieval"])
    async def retrieve_memories(body: RetrieveRequest, request: Request, key: ApiKey) -> Response:
        """Hybrid (vector + BM25) recall of a user's valid memories, fused and weighted by type."""
        access.check(key, body.owner_id)
        started = time.perf_counter()
        store, queries = recall(request)
        top_k = min(body.top_k or settings.api.default_top_k, settings.api.max_top_k)
        ranges = resolve_time(body.query, body.at or datetime.now(UTC).astimezone())
        statuses = (StoreStatus.valid, StoreStatus.expired) if body.include_expired else None
        ranked = await retrieve(
            store,
            queries,
            body.owner_id,
            body.user_id,
            body.query,
            top_k=top_k,
            recall_k=max(settings.api.recall_k, top_k),
            mode=body.retrieval,
            flt=MemoryFilter(statuses=statuses) if statuses else MemoryFilter(),
            time_ranges=ranges,
            time_boost=settings.api.time_boost,
            reranker=reranker if body.rerank is not False else None,
            rerank_candidates=settings.rerank.candidates,
        )
        metrics.results.inc(len(ranked))
        took_ms = round((time.perf_counter() - started) * 1000, 3)
        # Serialised here from plain data: returning a Response skips FastAPI's validation
        # of the response model (still the documented schema; a test holds them together).
        payload = retrieve_response_json(
            ranked, ranges, render_prompt([r.node for r in ranked]), took_ms
        )
        return Response(payload, media_type="application/json")

    @app.get(
        "/v1/users/{owner_id}/{user_id}/memories", response_model=MemoryPage, tags=["memories"]
    )
    async def list_memories(
        owner_id: IdPath,
        user_id: IdPath,
        request: Request,
        key: ApiKey,
        memory_type: Annotated[list[MemoryType] | None, Query()] = None,
        status: Annotated[list[StoreStatus] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> MemoryPage:
        """A user's memories, newest message time first (valid ones unless `status` says)."""
        access.check(key, owner_id)
        store, _ = state(request)
        flt = MemoryFilter(
            types=tuple(memory_type) if memory_type else MemoryFilter().types,
            statuses=tuple(status) if status else MemoryFilter().statuses,
        )
        nodes = await store.list_memories(owner_id, user_id, flt, limit=limit, offset=offset)
        total = await store.count(owner_id, user_id, flt)
        return MemoryPage(
            memories=[MemoryOut.of(n) for n in nodes], total=total, limit=limit, offset=offset
        )

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz(request: Request) -> Health:
        store, emb = state(request)
        return Health(
            status="ok", store=store.backend, embedder=emb.model_id, memories=await store.count()
        )

    users = "/v1/users/{owner_id}/{user_id}"

    @app.get(users + "/memories/{memory_id}", response_model=MemoryOut, tags=["memories"])
    async def get_memory(
        owner_id: IdPath, user_id: IdPath, memory_id: MemoryIdPath, request: Request, key: ApiKey
    ) -> MemoryOut:
        """One memory, whatever its status."""
        access.check(key, owner_id)
        store, _ = state(request)
        node = await store.get(owner_id, user_id, memory_id)
        if node is None:
            raise HTTPException(404, "no such memory")
        return MemoryOut.of(node)

    @app.post(users + "/memories", response_model=Accepted, status_code=202, tags=["memories"])
    async def add_memory(
        owner_id: IdPath, user_id: IdPath, body: AddMemoryRequest, key: ApiKey
    ) -> Accepted:
        """Add a memory by hand (``obs_customized``). It goes through the log like every
        change; the worker writes it in order with the user's other jobs."""
        access.check(key, owner_id)
        request_id = body.request_id or uuid.uuid4().hex
        mid = memory_id(owner_id, user_id, [f"add:{request_id}"], 0)
        job = AddMemoryJob(
            job_id=f"add-{request_id}",
            owner_id=owner_id,
            user_id=user_id,
            memory_id=mid,
            content=body.content,
            keywords=body.keywords,
            valid_from=body.valid_from,
        )
        await log_writer.send_job(job)
        return Accepted(job_id=job.job_id, memory_id=mid)

    @app.delete(
        users + "/memories/{memory_id}", response_model=Accepted, status_code=202, tags=["memories"]
    )
    async def delete_memory(
        owner_id: IdPath, user_id: IdPath, memory_id: MemoryIdPath, key: ApiKey
    ) -> Accepted:
        """Delete one memory (a delete event goes on the memory log)."""
        access.check(key, owner_id)
        job = DeleteMemoriesJob(
            job_id=f"del-{uuid.uuid4().hex}",
            owner_id=owner_id,
            user_id=user_id,
            memory_ids=[memory_id],
        )
        await log_writer.send_job(job)
        return Accepted(job_id=job.job_id, memory_id=memory_id)

    @app.delete(users + "/memories", response_model=Accepted, status_code=202, tags=["memories"])
    async def delete_all_memories(owner_id: IdPath, user_id: IdPath, key: ApiKey) -> Accepted:
        """Delete every memory of the user. The messages stay; see ``forget`` for erasure."""
        access.check(key, owner_id)
        job = DeleteMemoriesJob(
            job_id=f"del-{uuid.uuid4().hex}", owner_id=owner_id, user_id=user_id, memory_ids=None
        )
        await log_writer.send_job(job)
        return Accepted(job_id=job.job_id)

    @app.post(users + "/forget", response_model=Accepted, status_code=202, tags=["memories"])
    async def forget_user(owner_id: IdPath, user_id: IdPath, key: ApiKey) -> Accepted:
        """Erase the user (GDPR): every memory, the open window, and a tombstone on the log,
        so rebuilds and replays skip the user's earlier messages and memories."""
        access.check(key, owner_id)
        job = ForgetJob(job_id=f"forget-{uuid.uuid4().hex}", owner_id=owner_id, user_id=user_id)
        await log_writer.forget(job)
        recent_turns.forget(user_key(owner_id, user_id))
        return Accepted(job_id=job.job_id)

    @app.post("/v1/chat", response_model=ChatResponse, tags=["chat"])
    async def chat(body: ChatRequest, request: Request, key: ApiKey) -> ChatResponse:
        """Chat with memory: retrieve (time-aware) → a system prompt with the current time,
        the memories and the recent turns not yet consolidated → the model's answer. Both
        turns go to the messages topic, so the conversation becomes memory in turn."""
        access.check(key, body.owner_id)
        if chat_llm is None:
            raise HTTPException(503, "chat needs a generation model (set llm.backend)")
        store, queries = recall(request)
        now = body.at or datetime.now(UTC).astimezone()
        ranked = await retrieve(
            store,
            queries,
            body.owner_id,
            body.user_id,
            body.message,
            top_k=min(body.top_k or settings.api.default_top_k, settings.api.max_top_k),
            recall_k=settings.api.recall_k,
            time_ranges=resolve_time(body.message, now),
            time_boost=settings.api.time_boost,
        )
        k = user_key(body.owner_id, body.user_id)
        newest = await store.list_memories(body.owner_id, body.user_id, limit=1)
        recent = [*body.history, *recent_turns.since(k, newest[0].message_time if newest else None)]
        messages = chat_messages(
            name=body.speaker or body.user_id,
            now=now,
            memories=[r.node for r in ranked],
            recent=recent,
            message=body.message,
        )
        try:
            answer = await chat_llm.text(step="chat", owner_id=body.owner_id, messages=messages)
        except LLMError as exc:
            raise HTTPException(502, f"the model did not answer: {exc}") from exc
        turns = [
            ChatMessage(
                message_id=f"chat-{uuid.uuid4().hex}",
                owner_id=body.owner_id,
                user_id=body.user_id,
                role=role,
                speaker=body.speaker if role == "user" else None,
                content=text[:16000],
                sent_at=now + timedelta(milliseconds=i),
            )
            for i, (role, text) in enumerate((("user", body.message), ("assistant", answer)))
        ]
        if body.remember:
            await log_writer.send_messages(turns)
        recent_turns.add(k, now, ChatTurn(role="user", content=body.message))
        recent_turns.add(k, now, ChatTurn(role="assistant", content=answer[:16000]))
        return ChatResponse(
            answer=answer,
            memories=[RetrievedMemory.ranked(r) for r in ranked],
            system_prompt=messages[0]["content"],
            message_ids=[t.message_id for t in turns] if body.remember else [],
        )

    @app.get(users + "/export", response_model=Export, tags=["memories"])
    async def export_user(
        owner_id: IdPath, user_id: IdPath, request: Request, key: ApiKey
    ) -> Export:
        """Every memory of the user, valid and expired, as JSON."""
        access.check(key, owner_id)
        store, _ = state(request)
        everything = MemoryFilter(statuses=tuple(StoreStatus))
        nodes: list[MemoryNode] = []
        while True:
            page = await store.list_memories(
                owner_id, user_id, everything, limit=1000, offset=len(nodes)
            )
            nodes.extend(page)
            if len(page) < 1000:
                break
        return Export(
            owner_id=owner_id,
            user_id=user_id,
            exported_at=datetime.now(UTC),
            memories=[MemoryOut.of(n) for n in nodes],
        )

    return app
