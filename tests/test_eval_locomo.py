"""LoCoMo evaluation: parsing and scoring (pure), and a real run on a small slice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memstream.config import Settings
from memstream.evaluation.locomo import (
    load,
    parse_evidence,
    parse_session_time,
    question_users,
    recall,
    summarise,
)
from memstream.evaluation.runner import run_locomo
from memstream.search import RetrievalMode

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"

MINI = [
    {
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Ann Lee",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ann Lee", "dia_id": "D1:1", "text": "I adopted a cat."},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "Nice!", "blip_caption": "a cat"},
            ],
            "session_2_date_time": "9:00 am on 1 June, 2023",
            "session_3_date_time": "9:00 am on 2 June, 2023",
            "session_3": [{"speaker": "Bo", "dia_id": "D3:1", "text": "I run marathons."}],
        },
        "qa": [
            {
                "question": "What pet does Ann have?",
                "answer": "cat",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {
                "question": "What do they do?",
                "answer": "x",
                "evidence": ["D1:1; D3:1"],
                "category": 1,
            },
            {"question": "Unresolvable", "answer": "x", "evidence": ["D9:9"], "category": 2},
            {"question": "Adversarial about Bo", "evidence": ["D:3:1"], "category": 5},
        ],
    }
]


def test_load_mini(tmp_path: Path) -> None:
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(MINI))
    (conv,) = load(path)
    assert [m.message_id for m in conv.messages] == ["D1:1", "D1:2", "D3:1"]
    assert conv.messages[0].user_id == "Ann_Lee" and conv.messages[0].owner_id == "conv-x"
    assert conv.messages[1].content == "Nice! [shares a photo: a cat]"
    assert conv.messages[1].sent_at == datetime(2023, 5, 8, 13, 56, 30, tzinfo=UTC)
    assert [q.evidence for q in conv.questions] == [
        frozenset({"D1:1"}),
        frozenset({"D1:1", "D3:1"}),
        frozenset({"D3:1"}),
    ]
    assert conv.unresolved_evidence == 1
    assert conv.questions[0].users == ("Ann_Lee",)
    assert conv.questions[1].users == ("Ann_Lee", "Bo")
    with pytest.raises(ValueError, match="not in"):
        load(path, only=["conv-404"])


def test_parsing_helpers() -> None:
    assert parse_session_time("10:02 am on 22 October, 2023") == datetime(
        2023, 10, 22, 10, 2, tzinfo=UTC
    )
    assert parse_evidence(["D8:6; D9:17", "D:11:26", "D 2 : 3", "nonsense"]) == {
        "D8:6",
        "D9:17",
        "D11:26",
        "D2:3",
    }
    assert question_users("Did caroline and Melanie meet?", ["Caroline", "Melanie"]) == (
        "Caroline",
        "Melanie",
    )
    assert question_users("When did Melanie paint?", ["Caroline", "Melanie"]) == ("Melanie",)


def test_scoring() -> None:
    assert recall(frozenset({"a", "b"}), ["b", "c"]) == 0.5
    report = summarise([(1, 1.0), (1, 0.5), (4, 0.0), (5, 1.0)])
    assert report["recall_at_k"] == {
        "1": 0.75,
        "2": None,
        "3": None,
        "4": 0.0,
        "5": 1.0,
        "1-4": 0.5,
    }
    assert report["full_coverage"]["1"] == 0.5 and report["full_coverage"]["1-4"] == pytest.approx(
        1 / 3, abs=1e-4
    )
    assert report["questions"] == {"1": 2, "2": 0, "3": 0, "4": 1, "5": 1, "1-4": 3}


@pytest.mark.servers
@pytest.mark.skipif(not DEV.is_file(), reason="shared LoCoMo dev data not beside the repo")
def _slice(tmp_path: Path) -> tuple[Path, int, int]:
    """Sessions 1-3 of conv-30 and the questions they answer: (file, messages, questions)."""
    (conv,) = [c for c in json.loads(DEV.read_text()) if c["sample_id"] == "conv-30"]
    keep = {f"session_{n}" for n in range(1, 4)}
    conversation = {
        k: v
        for k, v in conv["conversation"].items()
        if not k.startswith("session_") or k.removesuffix("_date_time") in keep
    }
    known = {t["dia_id"] for s in keep for t in conversation.get(s, [])}
    qa = [
        q
        for q in conv["qa"]
        if parse_evidence(q["evidence"]) and parse_evidence(q["evidence"]) <= known
    ]
    assert qa, "the slice must have answerable questions"
    path = tmp_path / "slice.json"
    path.write_text(json.dumps([{**conv, "conversation": conversation, "qa": qa}]))
    return path, sum(len(conversation[s]) for s in keep), len(qa)


@pytest.mark.servers
@pytest.mark.skipif(not DEV.is_file(), reason="shared LoCoMo dev data not beside the repo")
async def test_eval_runs_on_a_small_slice(tmp_path: Path) -> None:
    """A short slice of one dev conversation through broker, worker and store."""
    path, messages, questions = _slice(tmp_path)
    settings = Settings.load(data_dir=tmp_path / "data")
    report = await run_locomo(
        settings,
        path,
        k=5,
        modes=[RetrievalMode.hybrid, RetrievalMode.bm25],
        workdir=tmp_path / "run",
    )
    assert report["k"] == 5 and report["retrieval"] == "hybrid"
    for key in ("recall_at_k", "full_coverage"):
        assert set(report[key]) == {"1", "2", "3", "4", "5", "1-4"}
    assert report["recall_at_k"]["1-4"] > 0
    assert set(report["by_retrieval"]) == {"hybrid", "bm25"}
    assert report["messages"] == messages
    assert 0 < report["memories"] <= report["messages"]
    assert report["llm_calls_per_100_messages"] == 0.0
    assert sum(report["questions"][c] for c in "12345") == questions


@pytest.mark.servers
@pytest.mark.skipif(not DEV.is_file(), reason="shared LoCoMo dev data not beside the repo")
async def test_eval_with_a_model_counts_its_calls(tmp_path: Path) -> None:
    """The same slice with a generation model (the scripted test server): the report's LLM
    cost is what the server counted, shutdown drain included."""
    from tests.support.llm_server import ScriptedLLM

    path, messages, _ = _slice(tmp_path)
    server = ScriptedLLM().start()
    try:
        settings = Settings.load(
            data_dir=tmp_path / "data",
            llm={
                "backend": "openai",
                "model": "scripted",
                "base_url": server.base_url,
                "api_key": "t",
                "cache_enabled": False,
            },
            reflection={"check_seconds": 1, "min_interval_seconds": 0},
        )
        report = await run_locomo(
            settings, path, k=5, modes=[RetrievalMode.hybrid], workdir=tmp_path / "run"
        )
    finally:
        server.stop()
    served = sum(server.calls.values())
    assert served > 0 and report["llm"]["calls"] == served
    assert report["llm_calls_per_100_messages"] == round(100 * served / messages, 3)
    assert report["llm"]["calls_by_step"]["consolidate"] == server.calls["consolidate"]
    assert report["llm_mode"] == "openai" and report["recall_at_k"]["1-4"] > 0
