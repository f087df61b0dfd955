"""Retrieval as the service does it, bound to its settings once: ``/v1/retrieve`` and
``/v1/chat`` call the same :class:`Retriever`, so a chat sees exactly what a retrieve returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from memstream.config import Settings
from memstream.embedder.batching import QueryEmbedder
from memstream.rerank import Reranker
from memstream.schemas.memory import StoreStatus
from memstream.search import Ranked, RetrievalMode, TimeRange, resolve_time, retrieve
from memstream.search.fusion import Floor
from memstream.sinks import MemoryFilter, MemoryStore

VALID_AND_EXPIRED = MemoryFilter(statuses=(StoreStatus.valid, StoreStatus.expired))


@dataclass(frozen=True)
class Retrieval:
    ranked: list[Ranked]
    time_ranges: list[TimeRange]
    #: Results the relevance floor cut (``top_k`` not padded with noise).
    cut: int = 0
    #: The text the channels searched, when it differs from the query (own name removed).
    searched: str | None = None


class Retriever:
    def __init__(self, settings: Settings, reranker: Reranker | None) -> None:
        self._api = settings.api
        self._candidates = settings.rerank.candidates
        self.reranker = reranker

    def top_k(self, asked: int | None) -> int:
        return min(asked or self._api.default_top_k, self._api.max_top_k)

    async def __call__(
        self,
        store: MemoryStore,
        queries: QueryEmbedder,
        owner_id: str,
        user_id: str,
        query: str,
        *,
        at: datetime | None = None,
        top_k: int | None = None,
        mode: RetrievalMode = RetrievalMode.hybrid,
        include_expired: bool = False,
        rerank: bool | None = None,
    ) -> Retrieval:
        """``at`` is the query's time (default now): time words resolve against it.
        ``rerank`` False skips a configured reranker; None or True use it."""
        k = self.top_k(top_k)
        ranges = resolve_time(query, at or datetime.now(UTC).astimezone())
        floor = Floor(queries.embedder.relevance_margin).scaled(self._api.relevance_floor)
        found = await retrieve(
            store,
            queries,
            owner_id,
            user_id,
            query,
            top_k=k,
            recall_k=max(self._api.recall_k, k),
            mode=mode,
            flt=VALID_AND_EXPIRED if include_expired else MemoryFilter(),
            time_ranges=ranges,
            time_boost=self._api.time_boost,
            reranker=self.reranker if rerank is not False else None,
            rerank_candidates=self._candidates,
            floor=floor,
            recency=self._api.recency,
            recency_half_life_days=self._api.recency_half_life_days,
        )
        return Retrieval(found.ranked, ranges, found.cut, found.searched)
