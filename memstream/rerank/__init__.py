"""Rerankers: re-score the fused top candidates against the query (optional, off by default).

``Reranker`` is the interface; DashScope gte-rerank is one backend, and
``CrossEncoderReranker`` is the seam for a local cross-encoder (none ships in a wheel here,
so it takes any callable that scores (query, document) pairs).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from memstream.config import RerankSettings


class Reranker(ABC):
    name: str

    @abstractmethod
    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        """One relevance score per document, higher is better, in input order."""


class CrossEncoderReranker(Reranker):
    """A local cross-encoder: ``score_pairs`` maps (query, document) pairs to scores."""

    name = "cross-encoder"

    def __init__(self, score_pairs: Callable[[list[tuple[str, str]]], Sequence[float]]) -> None:
        self._score_pairs = score_pairs

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        values = list(self._score_pairs([(query, d) for d in documents]))
        if len(values) != len(documents):
            raise ValueError("cross-encoder returned a different number of scores")
        return [float(v) for v in values]


class DashScopeReranker(Reranker):
    name = "dashscope"

    def __init__(self, model: str = "gte-rerank", api_key: str | None = None) -> None:
        self._model = model
        self._api_key = api_key or os.environ.get("DASHSCOPE_API_KEY")

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        from dashscope import TextReRank

        if not documents:
            return []
        response: Any = TextReRank.call(
            model=self._model,
            query=query,
            documents=list(documents),
            return_documents=False,
            api_key=self._api_key,
        )
        if response.status_code != HTTPStatus.OK:
            raise RuntimeError(f"DashScope rerank failed: {response.code} {response.message}")
        out = [0.0] * len(documents)
        for item in response.output["results"]:
            out[int(item["index"])] = float(item["relevance_score"])
        return out


def load_reranker(settings: RerankSettings) -> Reranker | None:
    if settings.backend == "none":
        return None
    return DashScopeReranker(settings.model, settings.api_key)


__all__ = ["CrossEncoderReranker", "DashScopeReranker", "Reranker", "load_reranker"]
