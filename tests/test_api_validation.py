"""Bad requests are refused at the door with a 4xx, never a 500 or a job that fails later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from memstream.config import Settings
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.sinks.sqlite import SQLiteStore

USERS = "/v1/users/demo/big"


@pytest.fixture
async def client(tmp_path: Path, embedder: Embedder) -> AsyncIterator[httpx.AsyncClient]:
    async with SQLiteStore(tmp_path / "s.db") as store:
        service = create_service(Settings.load(data_dir=tmp_path), store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            yield c


@pytest.mark.parametrize("offset", ["9223372036854775808", "1e20", "-1", "1000000001"])
async def test_a_list_offset_out_of_range_is_422(client: httpx.AsyncClient, offset: str) -> None:
    answer = await client.get(f"{USERS}/memories", params={"offset": offset})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        {"content": "I like tea.", "valid_from": "0001-01-01T00:00:00Z"},
        {"content": "I like tea.", "valid_from": "2150-01-01T00:00:00Z"},
        {"content": "I like tea.", "valid_from": "9999-12-31T00:00:00Z"},
        {"content": "I like tea.", "valid_from": "2024-01-01T00:00:00"},  # no zone
        {"content": " "},
        {"content": "\n\t "},
        {"content": ""},
    ],
)
async def test_a_memory_that_could_not_be_stored_is_422(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    answer = await client.post(f"{USERS}/memories", json=body)
    assert answer.status_code == 422, (body, answer.text)


async def test_a_chunked_body_over_the_limit_is_413_without_reading_it_whole(
    client: httpx.AsyncClient,
) -> None:
    limit = Settings().api.max_request_bytes
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:  # 20 MB offered, with no content-length
        nonlocal sent
        yield b'{"content": "'
        for _ in range(20 * 1024):
            sent += 1024
            yield b"x" * 1024
        yield b'"}'

    answer = await client.post(
        f"{USERS}/memories", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413, answer.text
    assert answer.json() == {"error": "request_too_large", "detail": {"max_bytes": limit}}
    assert sent < 3 * limit  # refused as it arrived, not after 20 MB
