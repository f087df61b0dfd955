"""Access control over every /v1 route: no key 401, unknown key 401, another owner's key 403."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.sinks.sqlite import SQLiteStore

KEYS = {"k-acme": ["acme"], "k-globex": ["globex"], "k-admin": ["*"]}

#: One request per /v1 route; the test fails if a route is missing here (so a new route
#: cannot skip the check unnoticed).
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/v1/retrieve"): {"owner_id": "acme", "user_id": "u1", "query": "tea"},
    ("GET", "/v1/users/{owner_id}/{user_id}/memories"): None,
    ("GET", "/v1/users/{owner_id}/{user_id}/memories/{memory_id}"): None,
    ("POST", "/v1/users/{owner_id}/{user_id}/memories"): {"content": "x"},
    ("DELETE", "/v1/users/{owner_id}/{user_id}/memories/{memory_id}"): None,
    ("DELETE", "/v1/users/{owner_id}/{user_id}/memories"): None,
    ("POST", "/v1/users/{owner_id}/{user_id}/forget"): None,
    ("GET", "/v1/users/{owner_id}/{user_id}/export"): None,
    ("POST", "/v1/chat"): {"owner_id": "acme", "user_id": "u1", "message": "hi"},
    ("POST", "/v1/messages"): {
        "messages": [
            {
                "message_id": "m1",
                "owner_id": "acme",
                "user_id": "u1",
                "role": "user",
                "content": "I like tea.",
                "sent_at": "2024-07-10T09:30:00+08:00",
            }
        ]
    },
}

#: What an authorised call returns here (no broker in this test: writes to the log are 503,
#: which proves the key was accepted; an unknown memory is 404).
ALLOWED = {
    ("GET", "/v1/users/{owner_id}/{user_id}/memories/{memory_id}"): 404,
    ("POST", "/v1/users/{owner_id}/{user_id}/memories"): 503,
    ("DELETE", "/v1/users/{owner_id}/{user_id}/memories/{memory_id}"): 503,
    ("DELETE", "/v1/users/{owner_id}/{user_id}/memories"): 503,
    ("POST", "/v1/users/{owner_id}/{user_id}/forget"): 503,
    ("POST", "/v1/chat"): 503,  # no generation model configured here
    ("POST", "/v1/messages"): 503,
}


@pytest.fixture(scope="module")
async def service(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> AsyncIterator[Any]:
    tmp = tmp_path_factory.mktemp("access")
    settings = Settings.load(
        data_dir=tmp,
        api={"api_keys": KEYS, "max_request_bytes": 2048},
        kafka={"bootstrap_servers": "127.0.0.1:1"},  # nothing listens: writes get 503
    )
    async with SQLiteStore(tmp / "a.db") as store:
        yield create_service(settings, store=store, embedder=embedder)


def v1_routes(app: Any) -> list[tuple[str, str]]:
    """Every /v1 route, routers included (FastAPI >= 0.16x keeps included routers whole)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI flattens included routers into app.routes
        routes: Any = app.routes
    else:
        routes = list(iter_route_contexts(app.routes))
    return sorted(
        (method, r.path)
        for r in routes
        if isinstance(getattr(r, "original_route", r), APIRoute) and r.path.startswith("/v1")
        for method in r.methods
    )


def test_every_v1_route_is_covered(service: Any) -> None:
    assert v1_routes(service) == sorted(BODIES)


@pytest.mark.parametrize(("method", "path"), sorted(BODIES))
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "k-nope"}, 401),
        ({"X-API-Key": "k-globex"}, 403),
        ({"Authorization": "Bearer k-globex"}, 403),
        ({"X-API-Key": "k-acme"}, 200),
        ({"Authorization": "Bearer k-acme"}, 200),
        ({"X-API-Key": "k-admin"}, 200),
    ],
    ids=[
        "no-key",
        "unknown-key",
        "foreign-owner",
        "foreign-owner-bearer",
        "own",
        "own-bearer",
        "admin",
    ],
)
async def test_route_checks_the_key(
    service: Any, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    url = path.replace("{owner_id}", "acme").replace("{user_id}", "u1")
    url = url.replace("{memory_id}", "m1")
    if status == 200:
        status = ALLOWED.get((method, path), 200)
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        r = await client.request(method, url, json=BODIES[(method, path)], headers=headers)
    assert r.status_code == status, r.text
    if status >= 400:
        assert set(r.json()) >= {"error"}


async def test_oversize_body_is_refused(service: Any) -> None:
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        r = await client.post(
            "/v1/retrieve",
            json={"owner_id": "acme", "user_id": "u1", "query": "x" * 3000},
            headers={"X-API-Key": "k-acme"},
        )
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"


def test_openapi_documents_the_keys(service: Any) -> None:
    doc = service.openapi()
    schemes = doc["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}
    retrieve = doc["paths"]["/v1/retrieve"]["post"]
    assert retrieve["security"] and {"401", "403", "413"} <= set(retrieve["responses"])


def test_keys_pass_to_child_processes(tmp_path: Path) -> None:
    from memstream.config import settings_env

    settings = Settings.load(data_dir=tmp_path, api={"api_keys": KEYS})
    env = settings_env(settings)
    assert env["MEMSTREAM_API__API_KEYS"].startswith("{")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert Settings.load().api.api_keys == KEYS


async def test_health_tells_nothing_about_tenants_once_keys_are_configured(service: Any) -> None:
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        health = (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["memories"] is None


async def test_metrics_can_be_protected_by_a_token(tmp_path: Path, embedder: Embedder) -> None:
    settings = Settings.load(data_dir=tmp_path, api={"metrics_token": "scrape-me"})
    async with SQLiteStore(tmp_path / "m.db") as store:
        app = create_service(settings, store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            assert (await client.get("/metrics")).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.get("/metrics", headers=wrong)).status_code == 401
            for headers in ({"Authorization": "Bearer scrape-me"}, {"X-API-Key": "scrape-me"}):
                r = await client.get("/metrics", headers=headers)
                assert r.status_code == 200 and "memstream_http_request_seconds" in r.text
