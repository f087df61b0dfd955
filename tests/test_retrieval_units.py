"""The retrieval parts that need no server: SPLADE, three-channel fusion, the relevance
floor, LLM-free supersession, the user's own name, tense."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memstream.embedder.splade import CONTEXT_WEIGHT, SpladeEncoder, dot, load_safetensors
from memstream.schemas import MemoryNode, MemoryType
from memstream.search.fusion import Floor, fuse, prefer_newer, same_subject
from memstream.search.names import name_forms, names_in, strip_names
from memstream.search.tense import asks_past, asks_present
from memstream.sinks.base import Channels, Hit

T0 = datetime(2024, 5, 2, 9, tzinfo=UTC)


def node(mid: str, content: str = "c", days: int = 0, **kw: object) -> MemoryNode:
    when = T0 + timedelta(days=days)
    return MemoryNode(
        memory_id=mid,
        owner_id="o",
        user_id="u",
        memory_type=kw.pop("mtype", MemoryType.observation),  # type: ignore[arg-type]
        content=content,
        message_time=when,
        valid_from=when,
        recorded_at=when,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def splade() -> SpladeEncoder:
    return SpladeEncoder()


def test_splade_known_token_weights(splade: SpladeEncoder) -> None:
    """The numpy forward pass: weights of SPLADE-tiny's top terms for a fixed text (fixed
    by this implementation; a GELU, attention or pooling change moves them)."""
    terms = splade.encode(["Went hiking with my sister last weekend"])[0]
    named = {splade.token(t): w for t, w in terms.items()}
    assert list(named)[:3] == ["sister", "hiking", "weekend"]
    assert named["sister"] == pytest.approx(2.2741, abs=2e-3)
    assert named["hiking"] == pytest.approx(1.9619, abs=2e-3)
    # Expansion: related words the text does not contain.
    assert {"sunday", "weekends"} <= set(named)
    assert all(w >= 0.05 for w in terms.values()) and len(terms) <= 96


def test_splade_does_not_depend_on_the_batch(splade: SpladeEncoder) -> None:
    text = "I adopted a golden retriever puppy"
    alone = splade.encode([text])[0]
    padded = splade.encode([text, "a much longer text " * 10])[0]
    assert alone.keys() == padded.keys()
    assert all(abs(alone[t] - padded[t]) < 1e-3 for t in alone)


def test_splade_memories_merge_their_context_weaker(splade: SpladeEncoder) -> None:
    plain = node("a", "Went hiking with my sister")
    answered = plain.model_copy(update={"context": "How was your trip to the mountains?"})
    own, merged = splade.encode_memories([plain, answered])
    context = splade.encode(["How was your trip to the mountains?"])[0]
    mountain = next(t for t in context if splade.token(t) == "mountains")
    assert str(mountain) not in own
    assert merged[str(mountain)] == pytest.approx(CONTEXT_WEIGHT * context[mountain], abs=1e-3)
    assert merged[next(iter(own))] == own[next(iter(own))], "own words keep their weight"


def test_safetensors_reader(tmp_path: Path) -> None:
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.array([1.5, -2.0], dtype="<f2")
    header = {
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "F16", "shape": [2], "data_offsets": [24, 28]},
        "__metadata__": {"format": "np"},
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + a.tobytes() + b.tobytes())
    out = load_safetensors(path)
    assert np.array_equal(out["a"], a) and out["b"].tolist() == [1.5, -2.0]
    assert dot({1: 2.0, 2: 1.0}, {2: 3.0, 9: 9.0}) == 3.0


def test_three_channels_fuse_and_agreement_wins() -> None:
    a, b, c, d = (node(x) for x in "abcd")
    ranked = fuse(
        [Hit(a, 0.9), Hit(b, 0.8)],
        [Hit(b, 7.0), Hit(c, 5.0)],
        [Hit(d, 3.0), Hit(b, 2.0)],
        top_k=10,
    )
    assert ranked[0].node.memory_id == "b"
    top = ranked[0]
    assert (top.vector_rank, top.text_rank, top.sparse_rank) == (2, 1, 2)
    assert top.rrf == pytest.approx(1 / 62 + 1 / 61 + 1 / 62)
    assert next(r for r in ranked if r.node.memory_id == "d").sparse_score == 3.0


def test_floor_cuts_weak_hits_per_channel() -> None:
    near, far, kw, weak = node("near"), node("far"), node("kw"), node("weak")
    channels = Channels(
        [Hit(near, 0.86), Hit(kw, 0.80), Hit(far, 0.70)],
        [Hit(kw, 9.0), Hit(weak, 1.0)],
        [Hit(kw, 4.0), Hit(near, 0.2)],
    )
    floored = Floor(dense_margin=0.1).apply(channels)
    assert [h.node.memory_id for h in floored.dense] == ["near", "kw"]
    assert [h.node.memory_id for h in floored.text] == ["kw"]
    assert [h.node.memory_id for h in floored.sparse] == ["kw"]
    assert Floor(0.1).scaled(0) is None
    strict = Floor(0.1).scaled(2)
    assert strict is not None and strict.dense_margin == pytest.approx(0.05)


def test_type_weight_only_reorders_relevant_memories() -> None:
    """A hand-added memory (x1.2) that the floor cut cannot come back by its weight."""
    work = node("work", "I work at Alibaba")
    tea = node("tea", "Alice prefers tea", mtype=MemoryType.obs_customized)
    channels = Floor(0.1).apply(Channels([Hit(work, 0.87), Hit(tea, 0.73)], [Hit(work, 3.0)], []))
    ranked = fuse(*channels, top_k=5)
    assert [r.node.memory_id for r in ranked] == ["work"]


def test_a_type_weight_lifts_near_equals_but_not_over_a_clearly_better_match() -> None:
    """A hand-added memory (x1.2) two ranks down stays below the memory the query is about;
    an insight (x2) halves its rank."""
    work = node("work", "I just joined Meituan as a data engineer.")
    puppy = node("puppy", "My puppy Max chews on everything!")
    diet = node("diet", "Alice is vegetarian.", mtype=MemoryType.obs_customized)
    dense = [Hit(work, 0.86), Hit(puppy, 0.85), Hit(diet, 0.84)]
    assert [r.node.memory_id for r in fuse(dense, [], top_k=3)] == ["work", "puppy", "diet"]
    insight = node("ins", "Alice likes her new job.", mtype=MemoryType.insight)
    ranked = fuse(
        [Hit(work, 0.86), Hit(puppy, 0.85), Hit(diet, 0.84), Hit(insight, 0.83)], [], top_k=4
    )
    assert [r.node.memory_id for r in ranked][:2] == ["work", "ins"]


def test_recency_lifts_the_newer_of_two_equal_matches() -> None:
    old, new = node("old", days=0), node("new", days=60)
    flat = fuse([Hit(old, 0.9), Hit(new, 0.9)], [Hit(new, 1.0), Hit(old, 1.0)], top_k=2)
    assert flat[0].node.memory_id == "old"  # the tie goes to the dense rank without recency
    lifted = fuse(
        [Hit(old, 0.9), Hit(new, 0.9)], [Hit(new, 1.0), Hit(old, 1.0)], top_k=2, recency=0.15
    )
    assert lifted[0].node.memory_id == "new" and lifted[0].recency_boost == pytest.approx(1.15)
    assert lifted[1].recency_boost == pytest.approx(1 + 0.15 / 4)  # two half-lives older


def test_recency_does_not_reorder_memories_close_in_time() -> None:
    """Two memories a minute apart are equally current: the better match stays first, however
    short the user's history."""
    work = node("work", "I just joined Meituan as a data engineer.")
    puppy = node("puppy", "My puppy Max chews on everything!").model_copy(
        update={"valid_from": T0 + timedelta(minutes=1)}
    )
    ranked = fuse([Hit(work, 0.84), Hit(puppy, 0.80)], [], top_k=2, recency=0.15)
    assert [r.node.memory_id for r in ranked] == ["work", "puppy"]
    assert ranked[0].recency_boost == pytest.approx(1.15, abs=1e-4)


def test_newer_memory_on_the_same_subject_goes_first() -> None:
    alibaba = node("a", "Long day. I work as a data engineer at Alibaba in Hangzhou.")
    club = node("c", "Yes, at a club near West Lake. My coach is called Mr. Zhang.", days=1)
    meituan = node("m", "I just joined Meituan as a senior data engineer.", days=59)
    assert same_subject(alibaba, meituan) and not same_subject(alibaba, club)
    assert same_subject(node("x", "我在阿里巴巴做数据工程师"), node("y", "我刚去美团做数据工程师"))
    ranked = fuse([Hit(alibaba, 0.87), Hit(club, 0.82), Hit(meituan, 0.77)], [], top_k=3)
    ordered = prefer_newer(ranked)
    assert [r.node.memory_id for r in ordered] == ["m", "a", "c"]
    assert ordered[0].supersedes == "a" and ordered[0].score > ordered[1].score
    assert [r.node.memory_id for r in prefer_newer(ordered)] == ["m", "a", "c"], "stable"


def test_own_name_is_taken_out_of_the_query() -> None:
    assert strip_names("Where does Alice work?", ["Alice"]) == "Where does work?"
    assert strip_names("What is Caroline's identity?", ["Caroline Smith"]) == "What is identity?"
    assert strip_names("林晓现在在哪家公司工作？", ["林晓"]) == "现在在哪家公司工作？"
    assert strip_names("晓明喜欢什么", ["王晓明"]) == "喜欢什么"
    assert strip_names("Alice", ["Alice"]) == "Alice", "nothing left: search the name"
    assert strip_names("Alice养了什么宠物？", ["Alice"]) == "养了什么宠物？"
    assert strip_names("Where does Alicia work?", ["Alice"]) == "Where does Alicia work?"
    assert name_forms("王晓明") == ["王晓明", "晓明"] and name_forms("Jon") == ["Jon"]
    assert names_in("Did caroline call?", "Caroline") and not names_in("林晓", "陈浩")


def test_tense_decides_whether_the_current_state_is_asked() -> None:
    assert asks_present("Where does Alice work?") and asks_present("林晓现在在哪家公司工作？")
    assert asks_past("Where did Alice work in 2022?") and asks_past("林晓以前做什么工作？")
    assert asks_past("When did she join Meituan?") and not asks_present("When did she join?")
    assert not asks_present("Alice's employer") and not asks_past("Alice's employer")
