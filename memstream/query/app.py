"""The retrieval query service (FastAPI): reads the store; writes only to the log (management
jobs, forget, chat turns). Never imports the worker.

The app is assembled here; routes live in ``routes/`` (one router per area), what they share
in :class:`~memstream.query.state.Service`, reached as a dependency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

import memstream
from memstream.config import Settings
from memstream.embedder import Embedder, load_embedder
from memstream.llm import LLMClient, load_llm
from memstream.metrics import BodyTooLarge, ObserveMiddleware, ServiceMetrics, too_large_body
from memstream.query.auth import AccessControl
from memstream.query.log_writer import LogWriter
from memstream.query.models import ErrorBody
from memstream.query.retriever import Retriever
from memstream.query.routes import chat, memories, messages, ops, retrieval
from memstream.query.state import Service
from memstream.rerank import Reranker, load_reranker
from memstream.runtime import tune_gc
from memstream.sinks import MemoryStore, open_store


def create_service(
    settings: Settings,
    *,
    store: MemoryStore | None = None,
    embedder: Embedder | None = None,
    llm: LLMClient | None = None,
    reranker: Reranker | None = None,
) -> FastAPI:
    """Build the app. Given a store and an embedder (already open: tests, bench, eval), it
    serves them at once; otherwise it opens what the settings name at startup. The chat model
    comes from the settings unless given."""
    owns_llm = llm is None
    service = Service(
        settings=settings,
        access=AccessControl(settings.api.api_keys),
        metrics=ServiceMetrics(),
        retriever=Retriever(
            settings, reranker if reranker is not None else load_reranker(settings.rerank)
        ),
        log_writer=LogWriter(settings),
        chat_llm=llm if llm is not None else load_llm(settings.llm),
    )
    given = store is not None and embedder is not None
    if store is not None and embedder is not None:
        service.serve(store, embedder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened: MemoryStore | None = None
        if not given:
            emb = embedder or load_embedder(settings.embedder)
            opened = store or open_store(settings.store, dimensions=emb.dimensions, serving=True)
            await opened.open()
            await opened.check_embedder(emb.model_id)
            service.serve(opened, emb)
            tune_gc()  # start-up is done: the model and modules are frozen out of collection
        try:
            yield
        finally:
            await service.log_writer.close()
            if owns_llm and service.chat_llm is not None:
                await service.chat_llm.close()
            if opened is not None and store is None:
                await opened.close()

    # /docs and /redoc with their assets served from the package: Swagger UI's default CDN
    # is unreachable on a closed network, where /docs was a blank page.
    app = FastAPIOffline(
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
    app.state.service = service

    def embedding_counts() -> tuple[int, int]:
        queries = service.queries
        return (queries.calls, queries.queries) if queries is not None else (0, 0)

    service.metrics.watch_embedding(embedding_counts)
    app.add_middleware(
        ObserveMiddleware, metrics=service.metrics, limit=settings.api.max_request_bytes
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"error": "invalid_request", "detail": errors})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):  # the same answer as a too-large content-length
            return JSONResponse(status_code=413, content=too_large_body(exc.limit))
        return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)})

    for router in (ops.router, retrieval.router, messages.router, memories.router, chat.router):
        app.include_router(router)
    return app
