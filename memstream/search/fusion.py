"""Hybrid recall fusion and prompt rendering: pure functions over store hits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise

from memstream.schemas.memory import MemoryNode, MemoryType
from memstream.search.timeparse import TimeRange
from memstream.sinks.base import Channels, Hit
from memstream.sinks.text import STOPWORDS, tokens

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

#: Lift of the newest relevant memory, in rank space (see :func:`fuse`): among near-equal
#: matches the current one first. Telling the current state from its history ("joined
#: Meituan" over "works at Alibaba") is :func:`prefer_newer`'s job. Relevant candidates only.
RECENCY = 0.15

#: Days after which a memory older than the newest candidate keeps half of the lift. On an
#: absolute scale, because facts change over weeks: two memories a minute apart are equally
#: current, whatever the span of the user's history.
RECENCY_HALF_LIFE_DAYS = 30.0


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
    sparse_ratio: float = 0.25

    def scaled(self, strictness: float) -> Floor | None:
        """``strictness`` 0 turns the floor off, 1 is this floor, 2 twice as strict."""
        if strictness <= 0:
            return None
        return Floor(
            self.dense_margin / strictness,
            min(1.0, self.text_ratio * strictness),
            min(1.0, self.sparse_ratio * strictness),
        )

    def apply(self, channels: Channels) -> Channels:
        """Each channel without its hits below the floor: a weak match in one channel
        neither adds to a memory's fused score nor keeps it in the answer."""
        dense = channels.dense
        if dense:
            dense = [h for h in dense if h.score >= dense[0].score - self.dense_margin]
        return Channels(
            dense,
            _above(channels.text, self.text_ratio),
            _above(channels.sparse, self.sparse_ratio),
        )


def _above(hits: list[Hit], ratio: float) -> list[Hit]:
    return [h for h in hits if h.score >= hits[0].score * ratio] if hits else hits


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
    #: The older memory on the same subject this one was moved above (current state first).
    supersedes: str | None = None


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
    recency: float = 0.0,
    half_life_days: float = RECENCY_HALF_LIFE_DAYS,
) -> list[Ranked]:
    """Reciprocal rank fusion of the channels with the soft priors in rank space, times
    ``time_boost`` when the memory's time falls in a range the query speaks of.

    The priors, the memory type's weight and a recency lift (newest relevant memory
    ``1 + recency``, halving every ``half_life_days`` older than it), divide a memory's rank
    in each channel: an insight (×2) at rank 4 counts as rank 2. Multiplying the fused
    score instead would let them override relevance, since adjacent RRF ranks differ by
    under 2 %: a hand-added "Alice is vegetarian." (×1.2) at rank 3 would answer "Where do I
    work?" above the memory about work at rank 1. A named time is a hard constraint, so
    its boost multiplies.

    Rank fusion needs no score calibration between cosine, BM25 and sparse dot products,
    which live on different scales and shift with corpus size. Given channels that passed
    a :class:`Floor`, weights and boosts only reorder relevant memories and never lift noise
    into the answer.
    """
    by_id: dict[str, dict[str, object]] = {}
    for channel, hits in (("vector", vector_hits), ("text", text_hits), ("sparse", sparse_hits)):
        for rank, hit in enumerate(hits, start=1):
            entry = by_id.setdefault(hit.node.memory_id, {"node": hit.node})
            entry[f"{channel}_rank"] = rank
            entry[f"{channel}_score"] = hit.score
    nodes = [e["node"] for e in by_id.values()]
    lift = _recency(nodes, recency, half_life_days)  # type: ignore[arg-type]
    ranked: list[Ranked] = []
    for entry in by_id.values():
        node = entry["node"]
        assert isinstance(node, MemoryNode)
        ranks = [
            int(rank)  # type: ignore[call-overload]
            for rank in (entry.get("vector_rank"), entry.get("text_rank"), entry.get("sparse_rank"))
            if rank is not None
        ]
        rrf = sum(1.0 / (rrf_k + rank) for rank in ranks)
        weight = type_weights.get(node.memory_type, 1.0)
        matched = time_match(node, time_ranges)
        boost = time_boost if matched is not None else 1.0
        newer = lift(node.valid_from)
        prior = weight * newer
        ranked.append(
            Ranked(
                node=node,
                score=sum(1.0 / (rrf_k + rank / prior) for rank in ranks) * boost,
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
    ranked.sort(key=lambda r: (-r.score, -r.type_weight, r.vector_rank or 10**9, r.node.memory_id))
    return ranked[:top_k]


def _recency(
    nodes: Sequence[MemoryNode], recency: float, half_life_days: float
) -> Callable[[datetime], float]:
    """``1 + recency`` for the newest candidate, the lift halving per ``half_life_days``
    before it. Relative to the newest memory, not to the clock: the latest thing known is
    the current state even when the user last spoke a year ago. A span-relative lift (newest
    vs oldest candidate) gave memories a minute apart the whole 15 %, ten RRF ranks' worth."""
    if recency <= 0 or len(nodes) < 2 or half_life_days <= 0:
        return lambda _: 1.0
    newest = max(n.valid_from.timestamp() for n in nodes)
    half_life = half_life_days * 86_400.0
    return lambda when: 1.0 + recency * 0.5 ** ((newest - when.timestamp()) / half_life)


def _subject_terms(text: str) -> frozenset[str]:
    """Words that say what a memory is about: no stopwords, and Chinese as character
    bigrams (single characters such as 我 or 的 say nothing)."""
    words = [t for t in tokens(text) if t not in STOPWORDS and len(t) > 1]
    cjk = [t for t in tokens(text) if len(t) == 1 and not t.isascii()]
    return frozenset(words + [a + b for a, b in pairwise(cjk)])


def same_subject(a: MemoryNode, b: MemoryNode) -> bool:
    """Two memories that say something about the same thing: at least two distinctive words
    in common, and a fair share of them ("I work as a data engineer at Alibaba" / "I just
    joined Meituan as a senior data engineer"). Embeddings cannot tell this: that pair is
    less similar to e5 (0.84) than the first is to "a club near West Lake" (0.86)."""
    x, y = _subject_terms(a.content), _subject_terms(b.content)
    shared = len(x & y)
    return shared >= 2 and shared / len(x | y) >= 0.15


def prefer_newer(ranked: Sequence[Ranked]) -> list[Ranked]:
    """LLM-free supersession: among results, a newer memory on the same subject as one
    ranked above it moves to just above it: the current state first, its history after
    (both stay). Only reorders what was retrieved, so what is found never changes."""
    out = list(ranked)
    for i in range(len(out)):
        for j in range(i + 1, len(out)):
            older, newer = out[i], out[j]
            if newer.node.valid_from > older.node.valid_from and same_subject(
                older.node, newer.node
            ):
                # Scores stay in order, so callers merging results by score keep it.
                moved = out.pop(j)
                score = max(moved.score, older.score * (1 + 1e-9) + 1e-12)
                out.insert(i, replace(moved, score=score, supersedes=older.node.memory_id))
                break
    return out


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
