"""Embedding APIs: OpenAI (or any compatible endpoint) and DashScope.

The vector size must be configured: the store needs it before the first call (the
Elasticsearch mapping), and both APIs accept it, so a model change is explicit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import numpy as np

from memstream.embedder.base import Embedder, Matrix


def _normalised(rows: Sequence[Sequence[float]], dimensions: int) -> Matrix:
    matrix = np.asarray(rows, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dimensions:
        raise ValueError(f"embedding API returned shape {matrix.shape}, expected (n, {dimensions})")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: Matrix = matrix / np.maximum(norms, 1e-12)
    return result


class OpenAIEmbedder(Embedder):
    def __init__(
        self,
        model: str,
        dimensions: int,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 64,
    ) -> None:
        import openai

        self.model_id = f"openai:{model}:{dimensions}"
        self.dimensions = dimensions
        self._model = model
        self._batch = batch_size
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            timeout=timeout,
            max_retries=3,
        )

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            chunk = list(texts[start : start + self._batch])
            response = self._client.embeddings.create(
                model=self._model, input=chunk, dimensions=self.dimensions
            )
            ordered = sorted(response.data, key=lambda d: d.index)
            rows.extend(d.embedding for d in ordered)
        return _normalised(rows, self.dimensions)


class DashScopeEmbedder(Embedder):
    def __init__(
        self, model: str, dimensions: int, *, api_key: str | None = None, batch_size: int = 10
    ) -> None:
        self.model_id = f"dashscope:{model}:{dimensions}"
        self.dimensions = dimensions
        self._model = model
        self._api_key = api_key or os.environ.get("DASHSCOPE_API_KEY")
        self._batch = min(batch_size, 10)  # the API's limit per request

    def embed(self, texts: Sequence[str]) -> Matrix:
        from dashscope import TextEmbedding

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            response: Any = TextEmbedding.call(
                model=self._model,
                input=list(texts[start : start + self._batch]),
                dimension=self.dimensions,
                api_key=self._api_key,
            )
            if response.status_code != HTTPStatus.OK:
                raise RuntimeError(
                    f"DashScope embedding failed: {response.code} {response.message}"
                )
            items = sorted(response.output["embeddings"], key=lambda e: e["text_index"])
            rows.extend(e["embedding"] for e in items)
        return _normalised(rows, self.dimensions)
