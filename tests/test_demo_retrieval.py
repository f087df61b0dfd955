"""The README's demo questions, asked of the real query service over memories made from
``examples/demo.jsonl`` by LLM-free consolidation (the worker's own code)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from memstream.config import Settings
from memstream.consolidation.verbatim import observations_verbatim
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.schemas import ChatMessage, MemoryNode, MemoryType
from memstream.schemas.jobs import ConsolidationJob, WindowTrigger
from memstream.sinks.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
AT = datetime(2024, 7, 10, 12, tzinfo=UTC)  # the demo is from 2024: time words need `at`


@pytest.fixture(params=["dense+bm25", "dense+bm25+sparse"])
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    name = "embedder" if request.param == "dense+bm25" else "sparse_embedder"
    embedder: Embedder = request.getfixturevalue(name)
    lines = (ROOT / "examples" / "demo.jsonl").read_text(encoding="utf-8").splitlines()
    messages = [ChatMessage.model_validate_json(line) for line in lines if line.strip()]
    job = ConsolidationJob(
        job_id="demo",
        owner_id="demo",
        user_id="alice",
        window_no=0,
        trigger=WindowTrigger.idle_gap,
        messages=messages,
        opened_at=messages[0].sent_at,
    )
    nodes = observations_verbatim(job, min_chars=3, recorded_at=AT)
    # Added by hand (obs_customized, type weight 1.2): must not win unrelated questions.
    nodes.append(
        MemoryNode(
            memory_id="tea",
            owner_id="demo",
            user_id="alice",
            memory_type=MemoryType.obs_customized,
            content="Alice prefers tea over coffee.",
            message_time=AT,
            valid_from=AT,
            recorded_at=AT,
        )
    )
    embedder.index(nodes)
    async with SQLiteStore(tmp_path / "demo.db") as store:
        await store.upsert(nodes)
        app = create_service(Settings.load(data_dir=tmp_path), store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
            yield c


async def ask(client: httpx.AsyncClient, query: str, top_k: int = 5) -> dict[str, Any]:
    r = await client.post(
        "/v1/retrieve",
        json={
            "owner_id": "demo",
            "user_id": "alice",
            "query": query,
            "top_k": top_k,
            "at": AT.isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_newest_employer_first_and_no_padding(client: httpx.AsyncClient) -> None:
    body = await ask(client, "Where does Alice work?")
    contents = [m["content"] for m in body["memories"]]
    assert "Meituan" in contents[0], contents
    assert any("Alibaba" in c for c in contents[1:]), "the history stays, below"
    assert body["memories"][0]["why"]["supersedes"] is not None
    assert "tea" not in " ".join(contents), "a hand-added memory is not first by its weight"
    assert len(contents) < 5 and body["cut"] == 5 - len(contents), "cut, not padded"
    assert not any("peanut" in c for c in contents)
    assert body["searched"] == "Where does work?"


async def test_history_when_the_past_is_asked(client: httpx.AsyncClient) -> None:
    body = await ask(client, "Where did Alice work before?")
    assert "Alibaba" in body["memories"][0]["content"]
    assert all(m["why"]["supersedes"] is None for m in body["memories"])


async def test_chinese_memory_found_by_an_english_query(client: httpx.AsyncClient) -> None:
    body = await ask(client, "What does Alice like to cook?")
    assert any("川菜" in m["content"] for m in body["memories"]), body["prompt"]
    # And the other way round. e5 leans to the query's language (the Chinese memory about
    # cooking ranks close), so the dog is asked to be near the top, not first.
    zh = await ask(client, "Alice养了什么宠物？")
    assert zh["searched"] == "养了什么宠物？"
    assert any("golden retriever" in m["content"] for m in zh["memories"][:2]), zh["prompt"]


async def test_time_words_resolve_against_at(client: httpx.AsyncClient) -> None:
    body = await ask(client, "What did Alice do in May?")
    assert [t["text"] for t in body["time_ranges"]] == ["in May"]
    assert body["time_ranges"][0]["start"].startswith("2024-05-01")
    may = [m for m in body["memories"] if m["why"]["time_match"] is not None]
    assert may and all(m["message_time"].startswith("2024-05") for m in may)
    assert body["memories"][0]["why"]["time_match"] is not None
