"""Hybrid retrieval against any store: dense + BM25 recall in parallel, then fusion."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import StrEnum

from memstream.embedder import Embedder
from memstream.rerank import Reranker
from memstream.search.fusion import TIME_BOOST, Ranked, fuse, rerank
from memstream.search.timeparse import TimeRange
from memstream.sinks.base import Hit, MemoryFilter, MemoryStore


class RetrievalMode(StrEnum):
    hybrid = "hybrid"
    dense = "dense"
    bm25 = "bm25"


async def retrieve(
    store: MemoryStore,
    embedder: Embedder,
    owner_id: str,
    user_id: str,
    query: str,
    *,
    top_k: int,
    recall_k: int = 100,
    mode: RetrievalMode = RetrievalMode.hybrid,
    flt: MemoryFilter = MemoryFilter(),
    time_ranges: Sequence[TimeRange] = (),
    time_boost: float = TIME_BOOST,
    reranker: Reranker | None = None,
    rerank_candidates: int = 50,
) -> list[Ranked]:
    async def dense() -> list[Hit]:
        if mode is RetrievalMode.bm25:
            return []
        vector = await asyncio.to_thread(embedder.embed_one, query)
        return await store.search_vector(owner_id, user_id, vector, recall_k, flt)

    async def bm25() -> list[Hit]:
        if mode is RetrievalMode.dense:
            return []
        return await store.search_text(owner_id, user_id, query, recall_k, flt)

    vector_hits, text_hits = await asyncio.gather(dense(), bm25())
    pool = max(top_k, rerank_candidates) if reranker is not None else top_k
    fused = fuse(vector_hits, text_hits, top_k=pool, time_ranges=time_ranges, time_boost=time_boost)
    if reranker is None or not fused:
        return fused
    scores = await asyncio.to_thread(reranker.scores, query, [r.node.content for r in fused])
    return rerank(fused, scores, top_k=top_k)
