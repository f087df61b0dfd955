"""Hybrid retrieval against any store: dense + BM25 recall in parallel, then fusion."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import StrEnum

from memstream.embedder import Embedder
from memstream.search.fusion import TIME_BOOST, Ranked, fuse
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
    return fuse(vector_hits, text_hits, top_k=top_k, time_ranges=time_ranges, time_boost=time_boost)
