"""Query embedding under concurrency: queries share model calls, answers stay per query."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from memstream.embedder import Embedder, Matrix
from memstream.embedder.batching import QueryEmbedder


class SlowHashEmbedder(Embedder):
    """Deterministic vectors from the text; each call takes a while, like a real model."""

    model_id = "hash-test"
    dimensions = 8

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Matrix:
        with self._lock:
            self.batches.append(list(texts))
        time.sleep(0.02)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("model failed")
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, sum(map(ord, text)) % self.dimensions] = 1.0
        return out


async def test_concurrent_queries_share_calls_and_get_their_own_vectors() -> None:
    model = SlowHashEmbedder()
    queries = QueryEmbedder(model, max_batch=4)
    texts = [f"query {i}" for i in range(10)]
    vectors = await asyncio.gather(*(queries.embed(t) for t in texts))
    for text, vector in zip(texts, vectors, strict=True):
        assert np.array_equal(vector, model.embed([text])[0])
    assert queries.queries == 10
    # All ten arrive before the first call starts: batches of at most 4, one call at a time.
    assert [len(b) for b in model.batches[: queries.calls]] == [4, 4, 2]


async def test_a_lone_query_does_not_wait_for_a_batch() -> None:
    queries = QueryEmbedder(SlowHashEmbedder(), max_batch=16)
    started = time.perf_counter()
    await queries.embed("hello")
    assert time.perf_counter() - started < 0.5 and queries.calls == 1


async def test_a_model_error_reaches_its_batch_and_the_next_batch_still_runs() -> None:
    queries = QueryEmbedder(SlowHashEmbedder(fail_on="bad"), max_batch=2)
    results = await asyncio.gather(
        *(queries.embed(t) for t in ["ok 0", "ok 1", "bad", "ok 3", "ok 4"]),
        return_exceptions=True,
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, Exception)]
    assert failed == [2, 3]  # the batch ["bad", "ok 3"] failed as a whole, nothing else did
    assert all(isinstance(results[i], np.ndarray) for i in (0, 1, 4))


async def test_a_cancelled_caller_is_skipped() -> None:
    model = SlowHashEmbedder()
    queries = QueryEmbedder(model, max_batch=8)
    first = asyncio.create_task(queries.embed("first"))
    await asyncio.sleep(0.005)  # "first" is in the model now
    gone = asyncio.create_task(queries.embed("gone"))
    kept = asyncio.create_task(queries.embed("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(first, kept)
    assert ["gone"] not in model.batches and ["kept"] in model.batches


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        QueryEmbedder(SlowHashEmbedder(), max_batch=0)


async def test_query_vectors_do_not_depend_on_the_batch(embedder: Embedder) -> None:
    """Padding to the longest query in a batch must not move a short query's vector."""
    texts = ["tea", "what did I do last weekend?", "我上周末做了什么？", "a " * 40 + "long one"]
    batched = embedder.embed_queries(texts)
    for text, vector in zip(texts, batched, strict=True):
        assert float(vector @ embedder.embed_query(text)) > 0.9999
    queries = QueryEmbedder(embedder, max_batch=16)
    together = await asyncio.gather(*(queries.embed(t) for t in texts))
    # e5 gains nothing from batches: concurrent queries then run side by side, one call each.
    assert queries.calls == (1 if embedder.batches_well else len(texts))
    for vector, alone in zip(together, batched, strict=True):
        assert float(vector @ alone) > 0.9999
