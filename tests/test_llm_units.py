"""Pure parts of LLM consolidation and reflection: no servers, no model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memstream.consolidation import extract as lc
from memstream.consolidation import reflection as rf
from memstream.consolidation.scheduler import ReflectionScheduler
from memstream.consolidation.steps import Step
from memstream.llm import Completion, ResponseCache, parse_json_object
from memstream.llm.cache import cache_key
from memstream.prompts import LANGUAGES, detect_language, load_prompt
from memstream.schemas import (
    ChatMessage,
    ConsolidationJob,
    EventTime,
    MemoryNode,
    MemoryType,
    StoreStatus,
    WindowTrigger,
)

MSG_TIME = datetime(2024, 7, 10, 9, 30, tzinfo=UTC)  # a Wednesday
NOW = datetime(2024, 7, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "fields", "valid_from"),
    [
        ({}, EventTime(), MSG_TIME),
        (
            {"year": 2024, "month": 5},
            EventTime(year=2024, month=5),
            datetime(2024, 5, 1, tzinfo=UTC),
        ),
        (
            {"year": 2024, "month": 7, "day": 8},
            EventTime(year=2024, month=7, day=8, week=28, weekday=0),
            datetime(2024, 7, 8, tzinfo=UTC),
        ),
        # next Monday: a plan is true from the message on, the event keeps its date
        (
            {"year": 2024, "month": 7, "day": 15},
            EventTime(year=2024, month=7, day=15, week=29, weekday=0),
            MSG_TIME,
        ),
        (
            {"year": -1, "month": 4, "day": 28, "recurring": True},
            EventTime(month=4, day=28),
            MSG_TIME,
        ),
        (
            {"year": 2023, "month": 4, "day": 28, "recurring": True},
            EventTime(month=4, day=28),
            MSG_TIME,
        ),
        ({"year": 2023}, EventTime(year=2023), datetime(2023, 1, 1, tzinfo=UTC)),
        (
            {"year": 2024, "month": 13, "day": 40},
            EventTime(year=2024),
            datetime(2024, 1, 1, tzinfo=UTC),
        ),
        (
            {"year": 2024, "month": 2, "day": 30},
            EventTime(year=2024, month=2),
            datetime(2024, 2, 1, tzinfo=UTC),
        ),
        ({"year": 1066, "month": 10, "day": 14}, EventTime(month=10, day=14), MSG_TIME),
    ],
)
def test_resolve_event(event: dict[str, object], fields: EventTime, valid_from: datetime) -> None:
    got_fields, got_from = lc.resolve_event(lc.FactEvent.model_validate(event), MSG_TIME)
    assert got_fields == fields
    assert got_from == valid_from


def _msg(i: int, text: str, role: str = "user") -> ChatMessage:
    return ChatMessage(
        message_id=f"m{i}",
        owner_id="o",
        user_id="u",
        role=role,
        speaker="Ann",
        content=text,
        sent_at=MSG_TIME + timedelta(minutes=i),
    )


def _job(*messages: ChatMessage) -> ConsolidationJob:
    return ConsolidationJob(
        job_id="j",
        owner_id="o",
        user_id="u",
        window_no=0,
        trigger=WindowTrigger.idle_gap,
        messages=list(messages),
        opened_at=MSG_TIME,
    )


def _existing(memory_id: str, text: str, days_ago: int = 30) -> MemoryNode:
    when = MSG_TIME - timedelta(days=days_ago)
    return MemoryNode(
        memory_id=memory_id,
        owner_id="o",
        user_id="u",
        memory_type=MemoryType.observation,
        content=text,
        message_time=when,
        valid_from=when,
        recorded_at=when,
        source_message_ids=[f"old-{memory_id}"],
        vector=[1.0, 0.0],
        embedding_model="e",
    )


def _fact(
    sources: list[int], content: str, relation: str = "new", existing: int = 0
) -> dict[str, object]:
    return {
        "sources": sources,
        "content": content,
        "keywords": ["k"],
        "relation": relation,
        "existing": existing,
    }


def _plan(
    job: ConsolidationJob, existing: list[MemoryNode], output: dict[str, object]
) -> lc.ConsolidationPlan:
    view = lc.consolidation_input(job, existing)
    return lc.plan_consolidation(
        job, view, lc.CONSOLIDATE.parse(output), min_score=2, language="en", recorded_at=NOW
    )


def test_info_filter_is_enforced_not_trusted() -> None:
    job = _job(_msg(1, "Write a story where I am a pilot in Paris."), _msg(2, "I live in Lyon."))
    plan = _plan(
        job,
        [],
        {
            "scores": [{"id": 1, "score": 1}, {"id": 2, "score": 3}],
            "facts": [_fact([1], "Ann is a pilot in Paris."), _fact([2], "Ann lives in Lyon.")],
        },
    )
    assert [n.content for n in plan.new] == ["Ann lives in Lyon."]
    assert plan.dropped["filtered"] == 1


def test_facts_must_cite_a_user_message() -> None:
    job = _job(_msg(1, "Where do you live?", role="assistant"), _msg(2, "Lyon."))
    plan = _plan(
        job,
        [],
        {
            "scores": [],
            "facts": [
                _fact([1], "Ann was asked."),
                _fact([9], "Made up."),
                _fact([2], "Ann lives in Lyon."),
            ],
        },
    )
    assert [n.source_message_ids for n in plan.new] == [["m2"]]
    assert plan.dropped["no_user_source"] == 2


def test_contradiction_expires_the_older_and_keeps_the_newer() -> None:
    old = _existing("a", "Ann works at Alibaba.")
    job = _job(_msg(1, "I just joined Meituan."))
    plan = _plan(
        job, [old], {"scores": [], "facts": [_fact([1], "Ann joined Meituan.", "contradicts", 1)]}
    )
    (new,) = plan.new
    (expired,) = plan.changed.values()
    assert new.store_status is StoreStatus.valid
    assert expired.memory_id == "a" and expired.store_status is StoreStatus.expired
    assert expired.valid_to == new.valid_from and expired.version == 2
    assert expired.vector == old.vector  # unchanged content keeps its vector


def test_duplicate_folds_provenance_into_the_existing_memory() -> None:
    old = _existing("a", "Ann has a cat.")
    plan = _plan(
        _job(_msg(1, "I have a cat.")),
        [old],
        {"scores": [], "facts": [_fact([1], "Ann has a cat.", "duplicate", 1)]},
    )
    assert plan.new == []
    assert plan.changed["a"].source_message_ids == ["m1", "old-a"]
    assert plan.changed["a"].version == 2


def test_two_facts_touching_one_memory_bump_its_version_once() -> None:
    old = _existing("a", "Ann works at Alibaba.")
    plan = _plan(
        _job(_msg(1, "I joined Meituan."), _msg(2, "I joined Meituan, really.")),
        [old],
        {
            "scores": [],
            "facts": [
                _fact([1], "Ann joined Meituan.", "contradicts", 1),
                _fact([2], "Ann works at Meituan.", "duplicate", 1),
            ],
        },
    )
    assert plan.changed["a"].version == 2


def test_unknown_existing_id_means_new() -> None:
    plan = _plan(
        _job(_msg(1, "I like tea.")),
        [],
        {"scores": [], "facts": [_fact([1], "Ann likes tea.", "contradicts", 7)]},
    )
    assert len(plan.new) == 1 and plan.changed == {}


def test_ids_are_deterministic_and_distinct_per_fact() -> None:
    job = _job(_msg(1, "I like tea and I live in Lyon."))
    out = {"scores": [], "facts": [_fact([1], "Ann likes tea."), _fact([1], "Ann lives in Lyon.")]}
    first, second = _plan(job, [], out), _plan(job, [], out)
    assert [n.memory_id for n in first.new] == [n.memory_id for n in second.new]
    assert len({n.memory_id for n in first.new}) == 2


def test_bad_model_output_is_rejected() -> None:
    with pytest.raises(ValueError):
        lc.CONSOLIDATE.parse({"facts": [{"content": ""}]})
    with pytest.raises(ValueError):
        lc.CONSOLIDATE.parse({"scores": [{"id": 1, "score": 9}]})
    with pytest.raises(ValueError):
        lc.CONSOLIDATE.parse({"facts": [{"content": "x", "relation": "maybe"}]})


def test_reconciliation_second_call_applies_decisions() -> None:
    old = _existing("a", "Ann works at Alibaba.")
    plan = _plan(
        _job(_msg(1, "I joined Meituan.")),
        [],
        {"scores": [], "facts": [_fact([1], "Ann joined Meituan.")]},
    )
    view = lc.reconcile_input(plan.new, [old])
    lc.apply_reconciliation(
        plan,
        view,
        lc.RECONCILE.parse(
            {
                "decisions": [
                    {"fact": 1, "relation": "contradicts", "existing": 1},
                    {"fact": 5, "relation": "duplicate", "existing": 1},
                ]
            }
        ),
        NOW,
    )
    assert len(plan.new) == 1
    assert plan.changed["a"].store_status is StoreStatus.expired


def _obs(i: int, text: str, *, reflected: bool = False, days: int = 0) -> MemoryNode:
    node = _existing(f"o{i}", text, days_ago=100 - days - i)
    return node.model_copy(update={"obs_reflected": reflected, "speaker": "Ann"})


def test_reflection_plan() -> None:
    due = [_obs(i, f"Ann eats dish {i}.") for i in range(1, 5)]
    older = _obs(9, "Ann works at Alibaba.", reflected=True, days=-50)
    newer = _obs(5, "Ann works at Meituan.")
    due.append(newer)
    diet = MemoryNode(
        memory_id=rf.insight_id("o", "u", "Diet"),
        owner_id="o",
        user_id="u",
        memory_type=MemoryType.insight,
        content="The Diet of Ann: rice",
        key="Diet",
        value="rice",
        message_time=NOW,
        valid_from=NOW,
        recorded_at=NOW,
        version=3,
    )
    view = rf.reflection_input(due, [diet], [(older, newer)])
    assert view.conflicts == [(6, 5)]
    output = rf.REFLECT.parse(
        {
            "insights": [
                {"key": "diet", "value": "noodles", "evidence": [1, 2]},  # existing key: update
                {"key": "DIET ", "value": "again", "evidence": []},  # same subject: ignored
                {"key": "job", "value": "Meituan", "evidence": [5]},
            ],
            "expire": [6, 1],  # 1 is not the older member of a pair: ignored
        }
    )
    plan = rf.plan_reflection(
        "o", "u", view, due, output, name="Ann", language="en", recorded_at=NOW
    )
    by_key = {n.key: n for n in plan.insights}
    assert by_key["Diet"].version == 4 and by_key["Diet"].content == "The Diet of Ann: noodles"
    assert by_key["job"].version == 1 and by_key["job"].source_message_ids == ["old-o5"]
    expired = [n for n in plan.updated if n.store_status is StoreStatus.expired]
    assert [n.memory_id for n in expired] == ["o9"] and expired[0].valid_to == newer.valid_from
    assert all(n.obs_reflected for n in plan.updated)
    assert len(plan.updated) == len(due) + 1


def test_unchanged_insight_is_not_rewritten() -> None:
    due = [_obs(1, "Ann eats rice.")]
    diet = MemoryNode(
        memory_id="x",
        owner_id="o",
        user_id="u",
        memory_type=MemoryType.insight,
        content="c",
        key="diet",
        value="rice",
        message_time=NOW,
        valid_from=NOW,
        recorded_at=NOW,
    )
    view = rf.reflection_input(due, [diet], [])
    out = rf.REFLECT.parse({"insights": [{"key": "diet", "value": "rice", "evidence": [1]}]})
    plan = rf.plan_reflection("o", "u", view, due, out, name="Ann", language="en", recorded_at=NOW)
    assert plan.insights == []


def test_insight_text_templates() -> None:
    assert rf.render_insight("diet", "vegetarian", "Ann", "en") == "The diet of Ann: vegetarian"
    assert rf.render_insight("饮食", "素食", "小李", "zh") == "小李的饮食：素食"
    assert rf.insight_id("o", "u", "Favourite  Sport") == rf.insight_id("o", "u", "favourite sport")


def test_scheduler_threshold_and_debounce() -> None:
    s = ReflectionScheduler(threshold=6, min_interval=60)
    s.add("o/a", 5)
    s.add("o/b", 7)
    assert s.take_due(now=0) == [("o/b", 7)]
    s.add("o/a", 1)
    s.add("o/b", 9)
    assert s.take_due(now=30) == [("o/a", 6)]  # b was requested 30 s ago
    assert s.take_due(now=61) == [("o/b", 9)]
    assert s.take_due(now=200) == []


@pytest.mark.parametrize(
    ("texts", "language"),
    [
        (["I work at Alibaba."], "en"),
        (["我在阿里巴巴工作。"], "zh"),
        (["我喜欢 Python 和 Rust"], "zh"),
        (["Meeting with 王总 about the quarterly budget review"], "en"),
        ([], "en"),
    ],
)
def test_detect_language(texts: list[str], language: str) -> None:
    assert detect_language(texts) == language


@pytest.mark.parametrize("step", ["consolidate", "reconcile", "reflect"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_prompts_exist_and_render(step: str, language: str) -> None:
    prompt = load_prompt(step, language)
    shape = STEPS[step].shape()
    system, user = prompt.render(name="Ann", input='{"x": 1}', shape=shape)
    assert system["role"] == "system" and user["role"] == "user"
    assert "Ann" in user["content"] and user["content"].endswith('INPUT:\n{"x": 1}')
    assert ("用户" in system["content"]) == (language == "zh")
    assert shape in user["content"] and "$" not in user["content"]
    with pytest.raises(KeyError):
        prompt.render(name="Ann", shape=shape)


STEPS = {"consolidate": lc.CONSOLIDATE, "reconcile": lc.RECONCILE, "reflect": rf.REFLECT}


@pytest.mark.parametrize("step", list(STEPS.values()), ids=list(STEPS))
def test_a_steps_schema_and_shape_come_from_its_response_model(step: Step[Any]) -> None:
    """One definition: the bounds written on the model are the schema's; a call narrows
    arrays further; the prompt's shape shows types, never a value a model could copy."""
    schema = step.schema()
    assert set(schema["required"]) == set(step.model.model_fields)
    for name, field in step.model.model_fields.items():
        bound = next((m.max_length for m in field.metadata if hasattr(m, "max_length")), None)
        assert schema["properties"][name].get("maxItems") == bound
    first_array = next(n for n, p in schema["properties"].items() if p["type"] == "array")
    assert step.schema(**{first_array: 2})["properties"][first_array]["maxItems"] == 2
    assert "$ref" not in json.dumps(schema) and "title" not in json.dumps(schema)
    shape = step.shape()
    assert "..." not in shape
    for name in schema["properties"]:
        assert f'"{name}"' in shape
    assert step.parse({}) == step.model()


def test_fact_bounds_are_the_models_and_lenient_where_dropping_is_harmless() -> None:
    schema = lc.CONSOLIDATE.schema(**lc.consolidation_bounds(3))
    fact = schema["properties"]["facts"]["items"]["properties"]
    assert schema["properties"]["scores"]["maxItems"] == 3
    assert schema["properties"]["facts"]["maxItems"] == 6
    assert fact["content"]["maxLength"] == 400 and fact["keywords"]["maxItems"] == 5
    assert fact["topic"]["enum"] == ["work", "home", "relationship", "education", "other"]
    out = lc.CONSOLIDATE.parse(
        {"facts": [{"content": "x", "keywords": list("abcdefg"), "topic": "hobby"}]}
    )
    assert out.facts[0].keywords == list("abcde") and out.facts[0].topic == "other"
    with pytest.raises(ValueError):
        lc.CONSOLIDATE.parse({"facts": [{"content": "x" * 401}]})


def test_parse_json_object() -> None:
    assert parse_json_object('{"a": 1}') == {"a": 1}
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Sure! {"a": 1} Hope this helps.') == {"a": 1}
    for bad in ["", "[1, 2]", "not json", '{"a": ']:
        with pytest.raises(ValueError):
            parse_json_object(bad)


def test_response_cache(tmp_path: Path) -> None:
    key = cache_key({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert key == cache_key({"messages": [{"content": "hi", "role": "user"}], "model": "m"})
    assert key != cache_key({"model": "m2", "messages": [{"role": "user", "content": "hi"}]})
    cache = ResponseCache(tmp_path / "c.db")
    assert cache.get(key) is None
    cache.put(key, Completion(text="{}", prompt_tokens=3, completion_tokens=1, model="m"))
    cache.close()
    again = ResponseCache(tmp_path / "c.db")  # survives a restart
    hit = again.get(key)
    assert hit is not None and hit.cached and hit.text == "{}" and len(again) == 1


def test_exclusive_topic_leads_the_keywords() -> None:
    job = _job(_msg(1, "I just joined Meituan."), _msg(2, "I like tea."))
    out = {
        "scores": [],
        "facts": [
            {**_fact([1], "Ann joined Meituan."), "keywords": ["Meituan", "work"], "topic": "work"},
            {**_fact([2], "Ann likes tea."), "topic": "other"},
        ],
    }
    joined, tea = _plan(job, [], out).new
    assert joined.keywords == ["work", "Meituan"] and lc.topic_of(joined) == "work"
    assert lc.topic_of(tea) is None
