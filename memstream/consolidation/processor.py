"""The jobs step without Faust: consolidate or reflect → embed → write through the sink →
memory events.

Kept apart from the agent so it can run inline (graceful shutdown, rebuilds) and be tested
against a real store without a broker. Without a generation model (LLM-free mode) windows
become verbatim observations, batched across jobs. With one, each window costs one fused
call (filter, extract, event time, reconciliation against related memories) and reflection
one more; jobs of one user run in order, different users concurrently.

One class, one method per job type and step (each short): the steps share the store, the
embedder, the model and the event publisher, so they stay together (~500 lines).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from memstream.config import Settings
from memstream.consolidation import extract as lc
from memstream.consolidation import reflection as rf
from memstream.consolidation.candidates import Candidates, oldest_first
from memstream.consolidation.scheduler import ReflectionScheduler
from memstream.consolidation.steps import Step
from memstream.consolidation.verbatim import is_substantive, observations_verbatim
from memstream.embedder import Embedder
from memstream.llm import LLMClient, LLMError
from memstream.prompts import detect_language
from memstream.schemas import (
    AddMemoryJob,
    AnyJob,
    ConsolidationJob,
    DeleteMemoriesJob,
    DlqReason,
    ForgetJob,
    MemoryEvent,
    MemoryNode,
    MemoryType,
    ReflectionJob,
    Role,
    StoreStatus,
    WindowTrigger,
    user_key,
    utcnow,
)
from memstream.sinks import MemoryStore, StoreWriteError
from memstream.sinks.base import MemoryFilter

log = logging.getLogger(__name__)

R = TypeVar("R", bound=BaseModel)

#: Publishes one memory event (the Faust topic in the worker; a list in tests).
Publish = Callable[[MemoryEvent], Awaitable[None]]


OBSERVATIONS = MemoryFilter(
    types=(MemoryType.observation, MemoryType.obs_customized), statuses=(StoreStatus.valid,)
)
PLAIN_OBSERVATIONS = MemoryFilter(types=(MemoryType.observation,), statuses=(StoreStatus.valid,))
INSIGHTS = MemoryFilter(types=(MemoryType.insight,), statuses=(StoreStatus.valid,))
#: Per-user lists read for reflection; users with more unreflected observations are
#: reflected in several rounds.
LIST_LIMIT = 2000
#: Memories deleted per store call when a user's memories are all deleted.
DELETE_PAGE = 1000


@dataclass
class JobOutcome:
    job_id: str
    memories: int
    applied: int
    new_observations: int = 0
    failure: DlqReason | None = None
    """Set when the job cannot succeed (model output invalid, model unavailable)."""
    detail: str = ""
    error: Exception | None = None
    """An unexpected error (store, broker): the caller retries the job."""


class JobProcessor:
    def __init__(
        self,
        settings: Settings,
        store: MemoryStore,
        embedder: Embedder,
        publish: Publish,
        llm: LLMClient | None = None,
        scheduler: ReflectionScheduler | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        consolidation, reflection = settings.consolidation, settings.reflection
        self._related_cosine = (
            embedder.related_cosine
            if consolidation.similar_min_score is None
            else consolidation.similar_min_score
        )
        self._contradiction_cosine = (
            embedder.contradiction_cosine
            if reflection.contradiction_min_score is None
            else reflection.contradiction_min_score
        )
        self._publish = publish
        self.llm = llm
        self.scheduler = scheduler
        self.dropped: Counter[str] = Counter()

    @property
    def reflects(self) -> bool:
        return self.llm is not None and self._settings.reflection.enabled

    async def process(self, jobs: Sequence[AnyJob]) -> list[JobOutcome]:
        """Run a batch of jobs; one outcome per job, in order.

        LLM-free: one embedding batch for all jobs, and any error fails the whole batch (the
        caller retries job by job). With a model: per-job outcomes, errors included.
        """
        if self.llm is None:
            return await self._in_order(jobs)
        outcomes: dict[int, JobOutcome] = {}
        by_user: dict[str, list[int]] = {}
        for i, job in enumerate(jobs):
            by_user.setdefault(job.key, []).append(i)

        async def run_user(indices: list[int]) -> None:
            for i in indices:  # one user's jobs in order: read-your-writes
                outcomes[i] = await self._run_guarded(jobs[i])

        await asyncio.gather(*(run_user(ix) for ix in by_user.values()))
        return [outcomes[i] for i in range(len(jobs))]

    async def _in_order(self, jobs: Sequence[AnyJob]) -> list[JobOutcome]:
        """LLM-free: runs of consolidation jobs are batched (one embedding batch); other jobs
        run one by one between them, so every user's jobs keep their order."""
        outcomes: list[JobOutcome] = []
        run: list[ConsolidationJob] = []
        for job in jobs:
            if isinstance(job, ConsolidationJob):
                run.append(job)
                continue
            if run:
                outcomes.extend(await self._verbatim(run))
                run = []
            outcomes.append(await self._run_guarded(job))
        if run:
            outcomes.extend(await self._verbatim(run))
        return outcomes

    async def _run_guarded(self, job: AnyJob) -> JobOutcome:
        try:
            if isinstance(job, ReflectionJob):
                return await self._reflect(job)
            if isinstance(job, AddMemoryJob):
                return await self._add(job)
            if isinstance(job, DeleteMemoriesJob):
                return await self._delete(job.job_id, job.owner_id, job.user_id, job.memory_ids)
            if isinstance(job, ForgetJob):
                return await self._forget(job)
            return await self._consolidate(job)
        except LLMError as exc:
            if isinstance(job, ReflectionJob) and self.scheduler is not None:
                # Still due: the timer asks again after its debounce interval.
                self.scheduler.add(job.key, job.unreflected)
            return JobOutcome(job.job_id, 0, 0, failure=DlqReason(exc.reason), detail=str(exc))
        except Exception as exc:
            log.warning("job %s failed: %r", job.job_id, exc)
            return JobOutcome(job.job_id, 0, 0, error=exc)

    # -- LLM-free ---------------------------------------------------------------------------

    async def _verbatim(self, jobs: Sequence[AnyJob]) -> list[JobOutcome]:
        recorded_at = utcnow()
        per_job: list[list[MemoryNode]] = [
            observations_verbatim(
                job, min_chars=self._settings.worker.min_content_chars, recorded_at=recorded_at
            )
            if isinstance(job, ConsolidationJob)
            else []  # reflection needs a model; a stray reflection job is a no-op
            for job in jobs
        ]
        nodes = [n for group in per_job for n in group]
        if self._settings.window.early_memories:
            finals = [
                n
                for job, group in zip(jobs, per_job, strict=True)
                if isinstance(job, ConsolidationJob) and job.trigger is not WindowTrigger.early
                for n in group
            ]
            await self._reuse_early_vectors(finals)
        await self._embed(nodes)
        applied = set((await self._store.upsert(nodes)).applied) if nodes else set()
        outcomes = []
        for job, group in zip(jobs, per_job, strict=True):
            await self._publish_all(group, job.job_id, "consolidate")
            outcomes.append(
                JobOutcome(job.job_id, len(group), sum(1 for n in group if n.memory_id in applied))
            )
        return outcomes

    # -- consolidation with a model ---------------------------------------------------------

    async def _consolidate(self, job: ConsolidationJob) -> JobOutcome:
        assert self.llm is not None
        cfg = self._settings.consolidation
        min_chars = self._settings.worker.min_content_chars
        if not lc.needs_model(job, min_chars):
            return JobOutcome(job.job_id, 0, 0)
        user_texts = [m.content for m in job.messages if is_substantive(m, min_chars)]
        related, considered = await self._related(job, user_texts)
        view = lc.consolidation_input(job, related)
        language = detect_language(user_texts)
        name = _name(job)
        output = await self._ask(
            lc.CONSOLIDATE,
            job.owner_id,
            job.user_id,
            language=language,
            name=name,
            payload=view.payload,
            bounds=lc.consolidation_bounds(len(view.user_message_ids)),
        )
        plan = lc.plan_consolidation(
            job, view, output, min_score=cfg.min_score, language=language, recorded_at=utcnow()
        )
        await self._embed(plan.new)
        await self._reconcile(job, plan, considered, name=name, language=language)
        self.dropped.update(plan.dropped)
        nodes = plan.nodes
        applied = await self._write(nodes)
        await self._publish_all(nodes, job.job_id, "consolidate")
        await self._count_unreflected(job.key, job.owner_id, job.user_id, len(plan.new))
        return JobOutcome(
            job.job_id,
            len(nodes),
            sum(1 for n in nodes if n.memory_id in applied),
            new_observations=len(plan.new),
        )

    async def _related(
        self, job: ConsolidationJob, texts: list[str]
    ) -> tuple[list[MemoryNode], set[str]]:
        """Existing valid observations similar to the window's user messages, then the same
        day's; never the window's own (so a re-delivered job sends the same prompt).

        Returns the memories to show (at most ``max_existing``, the most similar) and the
        ids of every candidate considered: those cut by the cap were less similar than the
        ones shown, so the reconcile step does not bring them back."""
        cfg = self._settings.consolidation
        if cfg.max_existing == 0:
            return [], set()
        candidates = Candidates(own={m.message_id for m in job.messages})
        if cfg.similar_k and texts:
            vectors = await asyncio.to_thread(self._embedder.embed, texts)
            for vector in vectors:
                await self._similar(job, vector, candidates)
        days = {m.sent_at.strftime("%Y%m%d") for m in job.messages if m.role is Role.user}
        recent = await self._store.list_memories(job.owner_id, job.user_id, OBSERVATIONS, limit=50)
        same_day = sorted(
            (n for n in recent if n.dt in days and candidates.admits(n)),
            key=lambda n: (n.message_time, n.memory_id),
        )
        chosen = candidates.ranked() + same_day
        return oldest_first(chosen[: cfg.max_existing]), {n.memory_id for n in chosen}

    async def _reconcile(
        self,
        job: ConsolidationJob,
        plan: lc.ConsolidationPlan,
        considered: set[str],
        *,
        name: str,
        language: str,
    ) -> None:
        """The second call, only when the new facts themselves (their meaning, or an exclusive
        topic such as work or home) find existing memories the first call did not see."""
        assert self.llm is not None
        cfg = self._settings.consolidation
        pending = [n for n in plan.new if n.memory_id not in plan.related]
        if not pending or cfg.max_existing == 0:
            return
        candidates = Candidates(
            own={m.message_id for m in job.messages},
            skip=considered | {n.memory_id for n in plan.new},
        )
        pool = await self._store.list_memories(
            job.owner_id, job.user_id, OBSERVATIONS, limit=LIST_LIMIT
        )
        for fact in pending:
            if cfg.similar_k and fact.vector is not None:
                await self._similar(job, _array(fact.vector), candidates)
            topic = lc.topic_of(fact)
            if topic is not None:
                for node in [m for m in pool if lc.topic_of(m) == topic][: cfg.similar_k]:
                    candidates.consider(self._related_cosine, node)
        if not candidates:
            return
        shown = oldest_first(candidates.ranked()[: cfg.max_existing])
        view = lc.reconcile_input(pending, shown)
        output = await self._ask(
            lc.RECONCILE,
            job.owner_id,
            job.user_id,
            language=language,
            name=name,
            payload=view.payload,
            bounds={"decisions": max(1, len(view.facts))},
        )
        lc.apply_reconciliation(plan, view, output, recorded_at=utcnow())

    async def _similar(
        self, job: ConsolidationJob, vector: npt.NDArray[np.float32], candidates: Candidates
    ) -> None:
        """The user's valid observations near ``vector``, above the similarity floor."""
        cfg = self._settings.consolidation
        hits = await self._store.search_vector(
            job.owner_id, job.user_id, vector, cfg.similar_k, OBSERVATIONS
        )
        for hit in hits:
            if hit.score >= self._related_cosine:
                candidates.consider(hit.score, hit.node)

    async def _count_unreflected(self, key: str, owner_id: str, user_id: str, new: int) -> None:
        if self.scheduler is None or not self.reflects:
            return
        if self.scheduler.knows(key):
            self.scheduler.add(key, new)
            return
        observations = await self._store.list_memories(
            owner_id, user_id, PLAIN_OBSERVATIONS, limit=LIST_LIMIT
        )
        self.scheduler.set_count(key, len(rf.due_observations(observations)))

    # -- reflection ------------------------------------------------------------------------

    async def _reflect(self, job: ReflectionJob) -> JobOutcome:
        assert self.llm is not None
        cfg = self._settings.reflection
        observations = await self._store.list_memories(
            job.owner_id, job.user_id, PLAIN_OBSERVATIONS, limit=LIST_LIMIT
        )
        all_due = rf.due_observations(observations)
        if len(all_due) < cfg.threshold:
            if self.scheduler is not None:
                self.scheduler.set_count(job.key, len(all_due))
            return JobOutcome(job.job_id, 0, 0)
        due = all_due[: cfg.max_observations]
        insights = await self._store.list_memories(
            job.owner_id, job.user_id, INSIGHTS, limit=LIST_LIMIT
        )
        conflicts = await self._conflicts(job, due) if cfg.resolve_contradictions else []
        view = rf.reflection_input(due, insights, conflicts)
        language = detect_language([o.content for o in due])
        name = rf.display_name(due, job.user_id)
        output = await self._ask(
            rf.REFLECT,
            job.owner_id,
            job.user_id,
            language=language,
            name=name,
            payload=view.payload,
            bounds=rf.reflection_bounds(len(view.observations), len(view.conflicts)),
        )
        plan = rf.plan_reflection(
            job.owner_id,
            job.user_id,
            view,
            due,
            output,
            name=name,
            language=language,
            recorded_at=utcnow(),
        )
        await self._embed(plan.insights)
        nodes = [*plan.insights, *plan.updated]
        applied = await self._write(nodes)
        await self._publish_all(nodes, job.job_id, "reflect")
        if self.scheduler is not None:
            self.scheduler.set_count(job.key, len(all_due) - len(due))
        return JobOutcome(job.job_id, len(nodes), sum(1 for n in nodes if n.memory_id in applied))

    async def _conflicts(
        self, job: ReflectionJob, due: Sequence[MemoryNode]
    ) -> list[tuple[MemoryNode, MemoryNode]]:
        """(older, newer) pairs of similar valid observations, at most one per due one."""
        pairs: dict[frozenset[str], tuple[MemoryNode, MemoryNode]] = {}
        for node in due:
            if node.vector is None:
                continue
            hits = await self._store.search_vector(
                job.owner_id, job.user_id, _array(node.vector), 3, PLAIN_OBSERVATIONS
            )
            for hit in hits:
                other = hit.node
                if other.memory_id == node.memory_id or hit.score < self._contradiction_cosine:
                    continue
                if other.content.strip() == node.content.strip():
                    continue
                older, newer = sorted(
                    (node, other), key=lambda n: (n.valid_from, n.message_time, n.memory_id)
                )
                pairs.setdefault(frozenset((older.memory_id, newer.memory_id)), (older, newer))
                break
            if len(pairs) >= 10:
                break
        return list(pairs.values())

    # -- management ------------------------------------------------------------------------

    async def _add(self, job: AddMemoryJob) -> JobOutcome:
        """A memory added by hand: ``obs_customized``, weighted 1.2 in retrieval."""
        when = job.valid_from or job.requested_at
        node = MemoryNode(
            memory_id=job.memory_id,
            owner_id=job.owner_id,
            user_id=job.user_id,
            memory_type=MemoryType.obs_customized,
            content=job.content.strip(),
            message_time=job.requested_at,
            valid_from=when,
            recorded_at=utcnow(),
            keywords=job.keywords,
            language=detect_language([job.content]),
        )
        existing = await self._store.get(job.owner_id, job.user_id, job.memory_id)
        if existing is not None:
            if existing.content == node.content and existing.valid_from == node.valid_from:
                return JobOutcome(job.job_id, 0, 0)  # a redelivered add
            node.version = existing.version + 1
        await self._embed([node])
        applied = await self._write([node])
        await self._publish_all([node], job.job_id, "add")
        return JobOutcome(job.job_id, 1, len(applied))

    async def _delete(
        self, job_id: str, owner_id: str, user_id: str, memory_ids: Sequence[str] | None
    ) -> JobOutcome:
        """Delete events carry the memory's next version, so a replayed older upsert loses.
        ``None`` deletes every memory of the user, a page at a time until none is left."""
        if memory_ids is not None:
            found = [await self._store.get(owner_id, user_id, mid) for mid in memory_ids]
            removed = await self._delete_nodes(job_id, [n for n in found if n is not None])
            return JobOutcome(job_id, removed, removed)
        everything = MemoryFilter(statuses=tuple(StoreStatus))
        total = 0
        while page := await self._store.list_memories(
            owner_id, user_id, everything, limit=DELETE_PAGE
        ):
            removed = await self._delete_nodes(job_id, page)
            if removed == 0:
                raise StoreWriteError(f"could not delete memories of {owner_id}/{user_id}")
            total += removed
        return JobOutcome(job_id, total, total)

    async def _delete_nodes(self, job_id: str, doomed: Sequence[MemoryNode]) -> int:
        if not doomed:
            return 0
        first = doomed[0]
        removed = set(
            await self._store.delete(first.owner_id, first.user_id, [n.memory_id for n in doomed])
        )
        await self._store.refresh()
        for node in doomed:
            if node.memory_id in removed:
                await self._publish(MemoryEvent.delete(node, job_id, cause="delete"))
        return len(removed)

    async def _forget(self, job: ForgetJob) -> JobOutcome:
        """Erasure: every memory of the user goes, and a tombstone goes on the log (after
        the deletes), so replays of messages and events skip the user's earlier data."""
        removed = await self._store.erase_user(job.owner_id, job.user_id)
        if self.llm is not None:
            await self.llm.forget(job.key)  # answers that quote what the user said
        await self._store.refresh()
        await self._publish(
            MemoryEvent.tombstone(job.owner_id, job.user_id, job.job_id, job.requested_at)
        )
        if self.scheduler is not None:
            self.scheduler.unreflected.pop(job.key, None)
        return JobOutcome(job.job_id, len(removed), len(removed))

    # -- shared ----------------------------------------------------------------------------

    async def _ask(
        self,
        step: Step[R],
        owner_id: str,
        user_id: str,
        *,
        language: str,
        name: str,
        payload: str,
        bounds: dict[str, int],
    ) -> R:
        """One structured call of ``step`` (its prompt in ``language``, its schema bounded)."""
        assert self.llm is not None
        return await self.llm.structured(
            step=step.name,
            owner_id=owner_id,
            messages=step.render(language, name=name, payload=payload),
            schema_name=step.schema_name,
            schema=step.schema(**bounds),
            parse=step.parse,
            subject=user_key(owner_id, user_id),
        )

    async def _reuse_early_vectors(self, nodes: Sequence[MemoryNode]) -> None:
        """A window's memory that an early job already wrote keeps that memory's dense
        vector: it is of the content alone, which the close does not change. Only the
        context is new, so the close costs a store read instead of a second embedding."""
        for node in nodes:
            early = await self._store.get(node.owner_id, node.user_id, node.memory_id)
            if (
                early is not None
                and early.vector
                and early.content == node.content
                and early.embedding_model == self._embedder.model_id
            ):
                node.vector, node.embedding_model = early.vector, early.embedding_model

    async def _embed(self, nodes: Sequence[MemoryNode]) -> None:
        # onnxruntime and numpy release the GIL: indexing in a thread keeps Faust's loop
        # responsive.
        await asyncio.to_thread(self._embedder.index, nodes)

    async def _write(self, nodes: Sequence[MemoryNode]) -> set[str]:
        """Write and make visible: the user's next job searches what this one wrote
        (read-your-writes; a no-op on SQLite, a refresh on Elasticsearch)."""
        if not nodes:
            return set()
        applied = set((await self._store.upsert(nodes)).applied)
        await self._store.refresh()
        return applied

    async def _publish_all(self, nodes: Sequence[MemoryNode], job_id: str, cause: str) -> None:
        # Events are published for every write, applied or not: after a crash between the
        # store write and the publish, the retried job must still complete the log.
        for node in nodes:
            await self._publish(MemoryEvent.upsert(node, job_id, cause=cause))


def _name(job: ConsolidationJob) -> str:
    speakers = Counter(m.speaker for m in job.messages if m.role is Role.user and m.speaker)
    return speakers.most_common(1)[0][0] if speakers else job.user_id


def _array(vector: list[float]) -> npt.NDArray[np.float32]:
    return np.asarray(vector, dtype=np.float32)
