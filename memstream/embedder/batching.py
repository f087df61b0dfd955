"""Query embedding for a server: concurrent requests share model calls.

A small transformer pays a large fixed cost per call (MiniLM on one core: ~2.6 ms for one
short query, ~1.5 ms per query in a batch of two or more), so under concurrent load the
service embeds every query that arrived while the previous call ran in one call. An idle
service still embeds a lone query at once: nothing waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
from collections import deque

from memstream.embedder.base import Embedder, Matrix


class QueryEmbedder:
    """``await embed(text)`` → one unit vector. ``max_batch=1`` embeds each query on its own
    (in a thread, concurrently); larger values coalesce queries, one model call at a time."""

    def __init__(self, embedder: Embedder, *, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.embedder = embedder
        # A model that gains nothing from batches: concurrent queries run side by side.
        self.max_batch = max_batch if embedder.batches_well else 1
        self._pending: deque[tuple[str, asyncio.Future[Matrix]]] = deque()
        self._draining: asyncio.Task[None] | None = None
        #: Model calls and queries embedded, for the service's metrics and the tests.
        self.calls = 0
        self.queries = 0

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    async def embed(self, text: str) -> Matrix:
        if self.max_batch == 1:
            self.calls += 1
            self.queries += 1
            return await asyncio.to_thread(self.embedder.embed_query, text)
        future: asyncio.Future[Matrix] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            size = min(self.max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(size)]
            # A caller that gave up (client gone, timeout) is not embedded for nothing.
            batch = [(text, future) for text, future in batch if not future.done()]
            if not batch:
                continue
            self.calls += 1
            self.queries += len(batch)
            try:
                vectors = await asyncio.to_thread(
                    self.embedder.embed_queries, [t for t, _ in batch]
                )
            except Exception as exc:  # every waiter gets the model's error, the loop goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
