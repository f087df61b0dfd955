"""The query service over a real SQLite store (no broker needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.schemas import StoreStatus
from memstream.sinks.sqlite import SQLiteStore
from tests.support.memories import observation

T0 = datetime(2024, 5, 2, 19, 6, tzinfo=UTC)
FACTS = [
    "I work as a data engineer at Alibaba in Hangzhou.",
    "I play tennis on Saturday mornings.",
    "I adopted a golden retriever puppy named Max.",
    "I am allergic to peanuts.",
    "我最近在学做川菜，最喜欢麻婆豆腐。",
]


@pytest.fixture
async def client(tmp_path: Path, embedder: Embedder) -> AsyncIterator[httpx.AsyncClient]:
    store = SQLiteStore(tmp_path / "svc.db")
    async with store:
        nodes = [
            observation(embedder, text, T0 + timedelta(days=i), f"m{i}")
            for i, text in enumerate(FACTS)
        ]
        nodes.append(
            nodes[0].model_copy(
                update={
                    "memory_id": "expired-1",
                    "content": "I work at Tencent.",
                    "store_status": StoreStatus.expired,
                    "vector": embedder.embed_one("I work at Tencent.").tolist(),
                }
            )
        )
        await store.upsert(nodes)
        settings = Settings.load(data_dir=tmp_path)
        app = create_service(settings, store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            yield c


async def test_retrieve_ranks_and_explains(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/retrieve",
        json={"owner_id": "demo", "user_id": "alice", "query": "Where do I work?", "top_k": 3},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["memories"]) == 3
    top = body["memories"][0]
    assert top["content"] == FACTS[0] and top["source_message_ids"] == ["m0"]
    assert top["why"]["vector_rank"] == 1 and top["why"]["type_weight"] == 1.0
    assert "vector" not in top
    assert body["prompt"].splitlines()[0] == f"[2024-05-02 19:06:00 Thursday] {FACTS[0]}"
    assert all("Tencent" not in m["content"] for m in body["memories"]), "expired excluded"
    assert body["took_ms"] > 0


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
async def test_retrieval_modes(client: httpx.AsyncClient, mode: str) -> None:
    r = await client.post(
        "/v1/retrieve",
        json={
            "owner_id": "demo",
            "user_id": "alice",
            "query": "peanuts allergy",
            "retrieval": mode,
        },
    )
    assert r.status_code == 200
    memories = r.json()["memories"]
    assert memories[0]["content"] == "I am allergic to peanuts."
    if mode == "bm25":
        assert all(m["why"]["vector_rank"] is None for m in memories)
    if mode == "dense":
        assert all(m["why"]["text_rank"] is None for m in memories)


async def test_sparse_mode_with_the_channel_off_is_a_clear_400(client: httpx.AsyncClient) -> None:
    """Not an empty answer, which would read as "nothing relevant"."""
    body = {"owner_id": "demo", "user_id": "alice", "query": "peanuts", "retrieval": "sparse"}
    r = await client.post("/v1/retrieve", json=body)
    assert r.status_code == 400 and "MEMSTREAM_EMBEDDER__SPARSE" in r.json()["error"]


async def test_chinese_query_finds_chinese_memory(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/retrieve",
        json={"owner_id": "demo", "user_id": "alice", "query": "麻婆豆腐", "top_k": 1},
    )
    assert r.json()["memories"][0]["content"] == FACTS[4]


async def test_unknown_user_gets_empty_results(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/retrieve", json={"owner_id": "demo", "user_id": "nobody", "query": "work"}
    )
    assert r.status_code == 200 and r.json() == {
        "memories": [],
        "time_ranges": [],
        "prompt": "",
        "cut": 0,
        "searched": None,
        "took_ms": r.json()["took_ms"],
    }


async def test_list_pages_and_filters(client: httpx.AsyncClient) -> None:
    page = (await client.get("/v1/users/demo/alice/memories?limit=2&offset=1")).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [m["source_message_ids"] for m in page["memories"]] == [["m3"], ["m2"]]
    expired = (await client.get("/v1/users/demo/alice/memories?status=expired")).json()
    assert [m["content"] for m in expired["memories"]] == ["I work at Tencent."]
    both = (await client.get("/v1/users/demo/alice/memories?status=valid&status=expired")).json()
    assert both["total"] == 6


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", "/v1/retrieve", {"owner_id": "demo", "user_id": "alice", "query": ""}),
        (
            "post",
            "/v1/retrieve",
            {"owner_id": "demo", "user_id": "alice", "query": "x", "top_k": 0},
        ),
        ("post", "/v1/retrieve", {"owner_id": "de/mo", "user_id": "alice", "query": "x"}),
        (
            "post",
            "/v1/retrieve",
            {"owner_id": "demo", "user_id": "alice", "query": "x", "bogus": 1},
        ),
        (
            "post",
            "/v1/retrieve",
            {"owner_id": "demo", "user_id": "alice", "query": "x", "retrieval": "magic"},
        ),
        ("get", "/v1/users/demo/al%20ice/memories", None),
        ("get", "/v1/users/demo/alice/memories?limit=0", None),
        ("get", "/v1/users/demo/alice/memories?status=deleted", None),
    ],
)
async def test_bad_requests_get_structured_422(
    client: httpx.AsyncClient, method: str, url: str, body: object
) -> None:
    r = await client.request(method, url, json=body)
    assert r.status_code == 422
    payload = r.json()
    assert payload["error"] == "invalid_request" and payload["detail"][0]["loc"]


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    health = (await client.get("/healthz")).json()
    assert health == {
        "status": "ok",
        "store": "sqlite",
        "embedder": "multilingual-e5-small-q4",
        "memories": 6,
    }
    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/retrieve", "/v1/users/{owner_id}/{user_id}/memories", "/healthz"} <= set(
        spec["paths"]
    )


async def test_metrics_endpoint_reports_latency_by_route(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = Settings.load(data_dir=tmp_path)
    async with SQLiteStore(tmp_path / "m.db") as store:
        service = create_service(settings, store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            r = await client.post(
                "/v1/retrieve", json={"owner_id": "o", "user_id": "u", "query": "tea"}
            )
            assert r.status_code == 200
            text = (await client.get("/metrics")).text
    assert (
        'memstream_http_request_seconds_count{method="POST",route="/v1/retrieve",status="200"} 1.0'
        in text
    )
    assert "memstream_retrieved_memories_total 0.0" in text
    assert "memstream_query_embeddings_total 1.0" in text
    assert "memstream_query_embed_calls_total 1.0" in text


async def test_last_weekend_outranks_a_more_similar_older_memory(
    tmp_path: Path, embedder: Embedder
) -> None:
    at = datetime(2024, 7, 10, 20, 0, tzinfo=UTC)  # a Wednesday
    older = "What did I do on the weekend? I went to the cinema and watched a movie."
    recent = "Went hiking with Tom at Mount Tai."
    nodes = [
        observation(embedder, text, when, f"s{i}", user="bob", mid=f"m-{i}")
        for i, (text, when) in enumerate(
            [
                (older, datetime(2024, 5, 4, 10, tzinfo=UTC)),
                (recent, datetime(2024, 7, 6, 9, tzinfo=UTC)),
            ]
        )
    ]
    query = "What did I do last weekend?"
    async with SQLiteStore(tmp_path / "t.db") as store:
        await store.upsert(nodes)
        service = create_service(Settings.load(data_dir=tmp_path), store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            # Without a time in the query the older one is the better match...
            plain = (
                await client.post(
                    "/v1/retrieve",
                    json={
                        "owner_id": "demo",
                        "user_id": "bob",
                        "query": "What did I do?",
                        "at": at.isoformat(),
                    },
                )
            ).json()
            assert plain["memories"][0]["content"] == older
            assert plain["time_ranges"] == []
            # ...with "last weekend", the weekend's memory wins, and says why.
            body = (
                await client.post(
                    "/v1/retrieve",
                    json={
                        "owner_id": "demo",
                        "user_id": "bob",
                        "query": query,
                        "at": at.isoformat(),
                    },
                )
            ).json()
    assert [r["text"] for r in body["time_ranges"]] == ["last weekend"]
    top = body["memories"][0]
    assert top["content"] == recent
    assert top["why"]["time_boost"] == 3.0 and top["why"]["time_match"]["text"] == "last weekend"
    assert body["memories"][1]["why"]["time_boost"] == 1.0


async def test_expired_memories_only_when_asked(client: httpx.AsyncClient) -> None:
    body = {"owner_id": "demo", "user_id": "alice", "query": "Tencent job"}
    default = (await client.post("/v1/retrieve", json=body)).json()
    assert "I work at Tencent." not in [m["content"] for m in default["memories"]]
    history = (await client.post("/v1/retrieve", json={**body, "include_expired": True})).json()
    found = {m["content"]: m["store_status"] for m in history["memories"]}
    assert found["I work at Tencent."] == "expired"


async def test_at_must_carry_a_timezone(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/retrieve",
        json={
            "owner_id": "demo",
            "user_id": "alice",
            "query": "yesterday",
            "at": "2024-07-10T10:00:00",
        },
    )
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


async def test_reranker_reorders_and_explains(tmp_path: Path, embedder: Embedder) -> None:
    """The local cross-encoder seam with a transparent scorer (word overlap): the reranker
    decides the order, and each result carries its score."""
    from memstream.rerank import CrossEncoderReranker

    def overlap(pairs: list[tuple[str, str]]) -> list[float]:
        return [
            float(len(set(q.lower().split()) & set(d.lower().rstrip(".").split())))
            for q, d in pairs
        ]

    async with SQLiteStore(tmp_path / "r.db") as store:
        nodes = [
            observation(embedder, text, T0 + timedelta(days=i), f"m{i}", mid=f"r{i}")
            for i, text in enumerate(FACTS)
        ]
        await store.upsert(nodes)
        service = create_service(
            Settings.load(data_dir=tmp_path),
            store=store,
            embedder=embedder,
            reranker=CrossEncoderReranker(overlap),
        )
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            query = {"owner_id": "demo", "user_id": "alice", "query": "am I allergic to peanuts"}
            ranked = (await client.post("/v1/retrieve", json=query)).json()
            plain = (await client.post("/v1/retrieve", json={**query, "rerank": False})).json()
    top = ranked["memories"][0]
    assert top["content"] == "I am allergic to peanuts." and top["why"]["rerank_score"] == 5.0
    scores = [m["why"]["rerank_score"] for m in ranked["memories"]]
    assert scores == sorted(scores, reverse=True)
    assert all(m["why"]["rerank_score"] is None for m in plain["memories"])
