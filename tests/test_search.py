"""Fusion, text preparation and prompt rendering (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memstream.schemas import MemoryNode, MemoryType
from memstream.search import fuse, render_line, render_prompt
from memstream.sinks.base import Hit
from memstream.sinks.text import index_text, query_terms, tokens

T0 = datetime(2024, 7, 10, 9, 5, 3, tzinfo=UTC)


def node(mid: str, mtype: MemoryType = MemoryType.observation, content: str = "c") -> MemoryNode:
    return MemoryNode(
        memory_id=mid,
        owner_id="o",
        user_id="u",
        memory_type=mtype,
        content=content,
        message_time=T0,
        valid_from=T0,
        recorded_at=T0,
    )


def test_rrf_rewards_agreement_between_channels() -> None:
    a, b, c = node("a"), node("b"), node("c")
    ranked = fuse([Hit(a, 0.9), Hit(b, 0.8)], [Hit(b, 7.0), Hit(c, 5.0)], top_k=10)
    assert [r.node.memory_id for r in ranked] == ["b", "a", "c"]
    top = ranked[0]
    assert top.vector_rank == 2 and top.text_rank == 1 and top.text_score == 7.0
    assert abs(top.rrf - (1 / 62 + 1 / 61)) < 1e-12
    assert ranked[2].vector_rank is None


def test_type_weights_lift_insights() -> None:
    obs, insight = node("obs"), node("ins", MemoryType.insight)
    ranked = fuse([Hit(obs, 0.9), Hit(insight, 0.5)], [], top_k=10)
    assert [r.node.memory_id for r in ranked] == ["ins", "obs"]
    assert ranked[0].type_weight == 2.0


def test_top_k_and_empty() -> None:
    hits = [Hit(node(str(i)), 1.0 - i / 100) for i in range(30)]
    assert len(fuse(hits, [], top_k=5)) == 5
    assert fuse([], [], top_k=5) == []


def test_prompt_lines_keep_message_time_and_case() -> None:
    n = node("a", content="I work at Alibaba")
    assert render_line(n) == "[2024-07-10 09:05:03 Wednesday] I work at Alibaba"
    later = node("b", content="我喜欢网球").model_copy(
        update={"message_time": T0 + timedelta(days=1)}
    )
    assert render_prompt([n, later]).splitlines()[1] == "[2024-07-11 09:05:03 Thursday] 我喜欢网球"


def test_text_tokens_split_cjk_and_drop_stopwords() -> None:
    assert tokens("I love Hangzhou's West-Lake!") == ["i", "love", "hangzhou", "s", "west", "lake"]
    assert tokens("我在杭州") == ["我", "在", "杭", "州"]
    assert index_text("Mixed 中文 text") == "mixed 中 文 text"
    assert query_terms("What is the name of my dog? my DOG") == ["name", "dog"]
    assert query_terms("the of and") == []


def test_retrieve_body_matches_its_documented_schema() -> None:
    """The hot path serialises plain data; it must be exactly a RetrieveResponse."""
    import json

    from memstream.query.models import RetrieveResponse, retrieve_response_json
    from memstream.search.timeparse import TimeRange

    week = TimeRange(T0 - timedelta(days=7), T0 + timedelta(hours=1), "last week")
    zh = node("b", MemoryType.insight, "她喜欢网球").model_copy(update={"keywords": ["网球"]})
    old = node("a").model_copy(update={"message_time": T0 - timedelta(days=30)})
    old.valid_from = old.message_time
    fused = fuse([Hit(old, 0.9), Hit(zh, 0.5)], [Hit(zh, 3.0)], top_k=5, time_ranges=[week])
    payload = retrieve_response_json(fused, [week], render_prompt([r.node for r in fused]), 1.5)
    data = json.loads(payload)
    parsed = RetrieveResponse.model_validate_json(payload)
    assert parsed.model_dump(mode="json") == data  # nothing missing, nothing extra, same form
    first = data["memories"][0]
    assert first["memory_id"] == "b" and first["why"]["time_match"]["text"] == "last week"
    assert first["why"]["text_rank"] == 1 and "vector" not in first
    assert data["memories"][1]["why"]["time_match"] is None
