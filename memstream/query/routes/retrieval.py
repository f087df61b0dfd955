"""``POST /v1/retrieve``: the latency users feel."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from memstream.query.models import RetrieveRequest, RetrieveResponse, retrieve_response_json
from memstream.query.state import CallerDep, ServiceDep
from memstream.search import RetrievalMode, render_prompt

router = APIRouter(tags=["retrieval"])


@router.post("/v1/retrieve", response_model=RetrieveResponse)
async def retrieve_memories(
    body: RetrieveRequest, service: ServiceDep, caller: CallerDep
) -> Response:
    """Hybrid (dense + BM25 + sparse) recall of a user's valid memories: floored, fused,
    weighted by type, time and recency."""
    caller.allow(body.owner_id)
    started = time.perf_counter()
    store, _, queries = service.ready()
    if body.retrieval is RetrievalMode.sparse and queries.embedder.sparse is None:
        # An empty answer would read as "nothing relevant"; the channel is off.
        raise HTTPException(
            400, "the sparse channel is off: set MEMSTREAM_EMBEDDER__SPARSE=splade-tiny"
        )
    found = await service.retriever(
        store,
        queries,
        body.owner_id,
        body.user_id,
        body.query,
        at=body.at,
        top_k=body.top_k,
        mode=body.retrieval,
        include_expired=body.include_expired,
        rerank=body.rerank,
    )
    service.metrics.results.inc(len(found.ranked))
    took_ms = round((time.perf_counter() - started) * 1000, 3)
    # Serialised here from plain data: returning a Response skips FastAPI's validation of the
    # response model (still the documented schema; a test holds them together).
    payload = retrieve_response_json(
        found.ranked,
        found.time_ranges,
        render_prompt([r.node for r in found.ranked]),
        took_ms,
        cut=found.cut,
        searched=found.searched,
    )
    return Response(payload, media_type="application/json")
