"""Hybrid recall fusion and prompt rendering: pure functions over store hits."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from memstream.schemas.memory import MemoryNode, MemoryType
from memstream.search.timeparse import TimeRange
from memstream.sinks.base import Channels, Hit

#: MemoryScope's type weights: insights summarise many observations; hand-added ones are trusted.
TYPE_WEIGHTS: Mapping[MemoryType, float] = {
    MemoryType.insight: 2.0,
    MemoryType.obs_customized: 1.2,
    MemoryType.observation: 1.0,
}

#: Boost for a memory whose event or message time falls in the query's time range. MemoryScope
#: multiplies cosine scores by 2; rank fusion sums two channels, so a memory first in both has
#: twice the score of one found by a single channel: x2 would only tie. x3 lets the time match
#: win unless the unmatched memory ranks far better.
TIME_BOOST = 3.0

#: Reciprocal-rank-fusion constant (Cormack et al.): damps the head without ignoring the tail.
RRF_K = 60

#: Lift of the newest relevant memory over the oldest (linear in time between them): the
#: current state outranks its history ("joined Meituan" over "works at Alibaba"), while a
#: clearly better match still wins. Among relevant candidates only.
RECENCY = 0.15


@dataclass(frozen=True)
class Floor:
    """When a recall hit counts as relevant, relative to the best hit of its channel (raw
    scores mean nothing across queries: an unrelated e5 cosine is ~0.8). A memory relevant in
    no channel is cut: ``top_k`` is a limit, not a quota to pad with noise.

    Measured on LoCoMo dev: 99 % of evidence messages lie within 0.105 cosine of the best
    e5 hit (half of all messages lie within 0.075); keyword and sparse hits below a quarter /
    a tenth of the best are almost never evidence.
    """

    dense_margin: float
    text_ratio: float = 0.25
    sparse_ratio: float = 0.1

    def scaled(self, strictness: float) -> Floor | None:
        """``strictness`` 0 turns the floor off, 1 is this floor, 2 twice as strict."""
        if strictness <= 0:
            return None
        return Floor(
            self.dense_margin / strictness,
            min(1.0, self.text_ratio * strictness),
            min(1.0, self.sparse_ratio * strictness),
        )

    def relevant(self, channels: Channels) -> set[str]:
        keep: set[str] = set()
        if channels.dense:
            best = channels.dense[0].score
            keep.update(
                h.node.memory_id for h in channels.dense if h.score >= best - self.dense_margin
            )
        for hits, ratio in ((channels.text, self.text_ratio), (channels.sparse, self.sparse_ratio)):
            if hits:
                best = hits[0].score
                keep.update(h.node.memory_id for h in hits if h.score >= best * ratio)
        return keep


@dataclass(frozen=True)
class Ranked:
    """One fused result and why it ranked where it did."""

    node: MemoryNode
    score: float
    rrf: float
    type_weight: float
    vector_rank: int | None = None
    vector_score: float | None = None
    text_rank: int | None = None
    text_score: float | None = None
    sparse_rank: int | None = None
    sparse_score: float | None = None
    recency_boost: float = 1.0
    time_boost: float = 1.0
    time_match: TimeRange | None = None
    rerank_score: float | None = None


def time_match(node: MemoryNode, ranges: Sequence[TimeRange]) -> TimeRange | None:
    """The first query range holding the memory's event time (``valid_from``) or its message
    time. Checking the message time too is what MemoryScope's matching missed."""
    for r in ranges:
        if r.contains(node.valid_from) or r.contains(node.message_time):
            return r
    return None


def fuse(
    vector_hits: Sequence[Hit],
    text_hits: Sequence[Hit],
    sparse_hits: Sequence[Hit] = (),
    *,
    top_k: int,
    rrf_k: int = RRF_K,
    type_weights: Mapping[MemoryType, float] = TYPE_WEIGHTS,
    time_ranges: Sequence[TimeRange] = (),
    time_boost: float = TIME_BOOST,
    relevant: Collection[str] | None = None,
    recency: float = 0.0,
) -> list[Ranked]:
    """Reciprocal rank fusion of the channels, times the memory type's weight, times
    ``time_boost`` when the memory's time falls in a range the query speaks of, times a
    recency lift (``recency``: newest relevant memory, ``1 + recency``; oldest, 1).

    Rank fusion needs no score calibration between cosine, BM25 and sparse dot products,
    which live on different scales and shift with corpus size. With ``relevant`` given, only
    those memories are ranked (see :class:`Floor`): weights and boosts then reorder relevant
    memories and can never lift noise into the answer.
    """
    by_id: dict[str, dict[str, object]] = {}
    for channel, hits in (("vector", vector_hits), ("text", text_hits), ("sparse", sparse_hits)):
        for rank, hit in enumerate(hits, start=1):
            if relevant is not None and hit.node.memory_id not in relevant:
                continue
            entry = by_id.setdefault(hit.node.memory_id, {"node": hit.node})
            entry[f"{channel}_rank"] = rank
            entry[f"{channel}_score"] = hit.score
    nodes = [e["node"] for e in by_id.values()]
    lift = _recency(nodes, recency)  # type: ignore[arg-type]
    ranked: list[Ranked] = []
    for entry in by_id.values():
        node = entry["node"]
        assert isinstance(node, MemoryNode)
        rrf = sum(
            1.0 / (rrf_k + int(rank))  # type: ignore[call-overload]
            for rank in (entry.get("vector_rank"), entry.get("text_rank"), entry.get("sparse_rank"))
            if rank is not None
        )
        weight = type_weights.get(node.memory_type, 1.0)
        matched = time_match(node, time_ranges)
        boost = time_boost if matched is not None else 1.0
        newer = lift(node.valid_from)
        ranked.append(
            Ranked(
                node=node,
                score=rrf * weight * boost * newer,
                rrf=rrf,
                type_weight=weight,
                vector_rank=entry.get("vector_rank"),  # type: ignore[arg-type]
                vector_score=entry.get("vector_score"),  # type: ignore[arg-type]
                text_rank=entry.get("text_rank"),  # type: ignore[arg-type]
                text_score=entry.get("text_score"),  # type: ignore[arg-type]
                sparse_rank=entry.get("sparse_rank"),  # type: ignore[arg-type]
                sparse_score=entry.get("sparse_score"),  # type: ignore[arg-type]
                recency_boost=newer,
                time_boost=boost,
                time_match=matched,
            )
        )
    ranked.sort(key=lambda r: (-r.score, r.vector_rank or 10**9, r.node.memory_id))
    return ranked[:top_k]


def _recency(nodes: Sequence[MemoryNode], recency: float) -> Callable[[datetime], float]:
    """1 for the oldest candidate, ``1 + recency`` for the newest, linear between: relative
    to the candidates, so a user's history of ten years and of ten minutes weigh alike."""
    if recency <= 0 or len(nodes) < 2:
        return lambda _: 1.0
    times = [n.valid_from.timestamp() for n in nodes]
    start, span = min(times), max(times) - min(times)
    if span <= 0:
        return lambda _: 1.0
    return lambda when: 1.0 + recency * (when.timestamp() - start) / span


def render_line(node: MemoryNode) -> str:
    """MemoryScope's prompt line: ``[YYYY-MM-DD HH:MM:SS Weekday] content`` (message time)."""
    return f"[{node.message_time.strftime('%Y-%m-%d %H:%M:%S %A')}] {node.content}"


def render_prompt(nodes: Sequence[MemoryNode]) -> str:
    return "\n".join(render_line(n) for n in nodes)


def rerank(ranked: Sequence[Ranked], scores: Sequence[float], *, top_k: int) -> list[Ranked]:
    """Order fused candidates by the reranker's relevance × type weight × time boost.

    The reranker replaces the rank-fusion score (it judges relevance better than either
    channel), while MemoryScope's type weights and the time match still apply on top.
    """
    if len(scores) != len(ranked):
        raise ValueError("one reranker score per candidate")
    floor = min(scores, default=0.0)
    rescored = [
        replace(
            r,
            rerank_score=float(score),
            # Shift to non-negative so the multipliers keep their meaning for any scale.
            score=(float(score) - min(floor, 0.0) + 1e-9) * r.type_weight * r.time_boost,
        )
        for r, score in zip(ranked, scores, strict=True)
    ]
    rescored.sort(key=lambda r: (-r.score, r.node.memory_id))
    return rescored[:top_k]
