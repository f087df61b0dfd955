"""The jobs step without Faust: consolidate → embed → write through the sink → memory events.

Kept apart from the agent so it can run inline (graceful shutdown, rebuilds) and be tested
against a real store without a broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from memstream.agents.consolidation import observations_verbatim
from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.schemas import ConsolidationJob, MemoryEvent, MemoryNode, utcnow
from memstream.sinks import MemoryStore

log = logging.getLogger(__name__)

#: Publishes one memory event (the Faust topic in the worker; a list in tests).
Publish = Callable[[MemoryEvent], Awaitable[None]]


@dataclass
class JobOutcome:
    job_id: str
    memories: int
    applied: int


class JobProcessor:
    def __init__(
        self, settings: Settings, store: MemoryStore, embedder: Embedder, publish: Publish
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._publish = publish

    async def process(self, jobs: Sequence[ConsolidationJob]) -> list[JobOutcome]:
        """Consolidate a batch of jobs; embeddings are computed in one batch for all of them."""
        recorded_at = utcnow()
        per_job: list[list[MemoryNode]] = [
            observations_verbatim(
                job, min_chars=self._settings.worker.min_content_chars, recorded_at=recorded_at
            )
            for job in jobs
        ]
        nodes = [n for group in per_job for n in group]
        if nodes:
            # onnxruntime releases the GIL: embedding in a thread keeps Faust's loop responsive.
            vectors = await asyncio.to_thread(self._embedder.embed, [n.content for n in nodes])
            for node_, vector in zip(nodes, vectors, strict=True):
                node_.vector = vector.tolist()
                node_.embedding_model = self._embedder.model_id
            result = await self._store.upsert(nodes)
            applied = set(result.applied)
        else:
            applied = set()
        outcomes = []
        for job, group in zip(jobs, per_job, strict=True):
            # Events are published for every write, applied or not: after a crash between the
            # store write and the publish, the retried job must still complete the log.
            for n in group:
                await self._publish(MemoryEvent.upsert(n, job.job_id, cause="consolidate"))
            outcomes.append(
                JobOutcome(job.job_id, len(group), sum(1 for n in group if n.memory_id in applied))
            )
        return outcomes
