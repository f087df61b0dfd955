"""Hybrid retrieval against any store: dense, keyword (BM25) and learned sparse (SPLADE)
recall in one store round trip, a relevance floor, then fusion."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from memstream.embedder.batching import QueryEmbedder
from memstream.prompts import detect_language
from memstream.rerank import Reranker
from memstream.search.fusion import (
    RECENCY,
    RECENCY_HALF_LIFE_DAYS,
    TIME_BOOST,
    Floor,
    Ranked,
    fuse,
    prefer_newer,
    rerank,
    time_match,
)
from memstream.search.names import strip_names
from memstream.search.tense import asks_past, asks_present
from memstream.search.timeparse import TimeRange
from memstream.sinks.base import Channels, MemoryFilter, MemoryStore
from memstream.sinks.text import query_terms

#: Content words up to which a query asks about a subject (current state first).
SUBJECT_TERMS = 4


class RetrievalMode(StrEnum):
    """``hybrid`` = every channel the service has; the others one channel alone (baselines)."""

    hybrid = "hybrid"
    dense = "dense"
    bm25 = "bm25"
    sparse = "sparse"


@dataclass(frozen=True)
class Recalled:
    ranked: list[Ranked]
    #: Results the relevance floor kept out of the answer (``top_k`` would have held them).
    cut: int = 0
    #: The query the channels searched (the user's own name taken out), when it differs.
    searched: str | None = None


async def _recall(
    store: MemoryStore,
    embedder: QueryEmbedder,
    owner_id: str,
    user_id: str,
    query: str,
    mode: RetrievalMode,
    recall_k: int,
    flt: MemoryFilter,
) -> Channels:
    dense = mode in (RetrievalMode.hybrid, RetrievalMode.dense)
    sparse_encoder = embedder.embedder.sparse
    # SPLADE-tiny's vocabulary is English: on a Chinese query it only adds noise (measured).
    sparse = (
        sparse_encoder is not None
        and mode in (RetrievalMode.hybrid, RetrievalMode.sparse)
        and (mode is RetrievalMode.sparse or detect_language([query]) != "zh")
    )
    vector_task = asyncio.ensure_future(embedder.embed(query)) if dense else None
    terms = None
    if sparse:
        assert sparse_encoder is not None
        terms = await asyncio.to_thread(sparse_encoder.encode_query, query)
    vector = None if vector_task is None else await vector_task
    return await store.search_hybrid(
        owner_id,
        user_id,
        vector,
        query if mode in (RetrievalMode.hybrid, RetrievalMode.bm25) else None,
        recall_k,
        flt,
        terms=terms,
        vectors=False,  # fusion and the response never look at them
    )


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
    floor: Floor | None = None,
    recency: float = RECENCY,
    recency_half_life_days: float = RECENCY_HALF_LIFE_DAYS,
) -> Recalled:
    channels = await _recall(store, embedder, owner_id, user_id, query, mode, recall_k, flt)
    # Every memory searched is this user's: their own name in the query only matches other
    # people's greetings ("Thanks, Alice!") and pulls the vector towards the name. The names
    # are the ones the user's memories carry, so this needs no profile and no cache.
    names = {h.node.speaker for hits in channels for h in hits if h.node.speaker}
    searched = strip_names(query, names) if names else query
    if searched != query:
        channels = await _recall(store, embedder, owner_id, user_id, searched, mode, recall_k, flt)
    found = {h.node.memory_id for hits in channels for h in hits}
    if floor is not None:
        floored = floor.apply(channels)
        # A memory from the time the query names is relevant by that alone.
        timely = [h for h in channels.dense if time_match(h.node, time_ranges)]
        kept = {h.node.memory_id for hits in floored for h in hits}
        channels = Channels(
            floored.dense + [h for h in timely if h.node.memory_id not in kept],
            floored.text,
            floored.sparse,
        )
    pool = max(top_k, rerank_candidates) if reranker is not None else top_k
    fused = fuse(
        channels.dense,
        channels.text,
        channels.sparse,
        top_k=pool,
        time_ranges=time_ranges,
        time_boost=time_boost,
        recency=recency if asks_present(query) else 0.0,
        half_life_days=recency_half_life_days,
    )
    cut = max(0, min(top_k, len(found)) - min(top_k, len(fused)))
    if reranker is not None and fused:
        scores = await asyncio.to_thread(reranker.scores, query, [r.node.content for r in fused])
        fused = rerank(fused, scores, top_k=top_k)
    fused = fused[:top_k]
    # A question about a subject ("Where does Alice work?": few content words) wants its
    # current state; a detailed query wants the memory it describes, and history when it
    # speaks of the past.
    if not asks_past(query) and len(query_terms(searched)) <= SUBJECT_TERMS:
        fused = prefer_newer(fused)
    return Recalled(fused, cut, searched if searched != query else None)
