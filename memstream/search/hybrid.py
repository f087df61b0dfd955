"""Hybrid retrieval against any store: dense + BM25 recall in parallel, then fusion."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import StrEnum

from memstream.embedder.batching import QueryEmbedder
from memstream.rerank import Reranker
from memstream.search.fusion import TIME_BOOST, Ranked, fuse, rerank
from memstream.search.timeparse import TimeRange
from memstream.sinks.base import MemoryFilter, MemoryStore


class RetrievalMode(StrEnum):
    hybrid = "hybrid"
    dense = "dense"
    bm25 = "bm25"


async def retrieve(
    store: MemoryStore,
    embedder: QueryEmbedder,
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
    vector = None if mode is RetrievalMode.bm25 else await embedder.embed(query)
    vector_hits, text_hits = await store.search_hybrid(
        owner_id,
        user_id,
        vector,
        None if mode is RetrievalMode.dense else query,
        recall_k,
        flt,
        vectors=False,  # fusion and the response never look at them
    )
    pool = max(top_k, rerank_candidates) if reranker is not None else top_k
    fused = fuse(vector_hits, text_hits, top_k=pool, time_ranges=time_ranges, time_boost=time_boost)
    if reranker is None or not fused:
        return fused
    scores = await asyncio.to_thread(reranker.scores, query, [r.node.content for r in fused])
    return rerank(fused, scores, top_k=top_k)
