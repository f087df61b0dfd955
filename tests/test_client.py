"""The Python client against a running stack (broker, worker, query service), and the
examples of docs/client.md run as written."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memstream import client as ms
from memstream.embedded import free_port
from tests.support.stack import Stack, wait_memories

ROOT = Path(__file__).resolve().parents[1]


def doc_examples() -> list[str]:
    text = (ROOT / "docs" / "client.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.servers
def test_client_end_to_end_and_the_docs_examples(stack: Stack) -> None:
    examples = doc_examples()
    assert len(examples) == 3
    namespace: dict[str, Any] = {}
    os.environ["MEMSTREAM_URL"] = stack.url
    try:
        exec(examples[0], namespace)  # add_messages, as the docs show it
        with ms.Client(stack.url) as c:
            wait_memories(c, "my-app", "u-42", 2)
            exec(examples[1], namespace)  # retrieve, list, add_memory, export
            exec(examples[2], namespace)  # the async client
            found = c.retrieve("my-app", "u-42", "Where do I work?", top_k=3)
            assert "Meituan" in found.memories[0].content
            assert found.memories[0].source_message_ids == ["c1-1"]
            wait_memories(c, "my-app", "u-42", 3)  # the hand-added memory went through the log
            page = c.list("my-app", "u-42", memory_types=["obs_customized"])
            assert [m.content for m in page.memories] == ["Alice is vegetarian."]
            one = c.get("my-app", "u-42", page.memories[0].memory_id)
            assert one.keywords == ["diet"]
            with pytest.raises(ms.NotFound) as missing:
                c.get("my-app", "u-42", "no-such-memory")
            assert missing.value.status_code == 404
            with pytest.raises(ms.InvalidRequest) as invalid:
                c.retrieve("my-app", "u-42", "", top_k=3)
            assert invalid.value.detail
            bad = c.add_messages([{"message_id": "x", "owner_id": "my-app"}])
            assert bad.accepted == 0 and bad.results[0].reason == "missing_field"
            assert c.delete("my-app", "u-42", one.memory_id).status == "accepted"
            exported = c.export("my-app", "u-42")
            assert {m.content for m in exported.memories} >= {"My puppy Max chews on everything!"}
            assert c.forget("my-app", "u-42").status == "accepted"
            deadline = time.monotonic() + 60
            while c.list("my-app", "u-42").total and time.monotonic() < deadline:
                time.sleep(0.5)
            assert c.list("my-app", "u-42").total == 0
    finally:
        os.environ.pop("MEMSTREAM_URL", None)


def test_retries_a_503_then_raises_unavailable() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": "the message log is unavailable"})
        return httpx.Response(202, json={"job_id": "j", "status": "accepted"})

    with ms.Client("http://svc", transport=httpx.MockTransport(handler), backoff=0.01) as c:
        assert c.forget("o", "u").job_id == "j"
    assert calls == ["/v1/users/o/u/forget"] * 3

    always = httpx.MockTransport(lambda r: httpx.Response(503, json={"error": "down"}))
    with (
        ms.Client("http://svc", transport=always, retries=2, backoff=0.01) as c,
        pytest.raises(ms.Unavailable, match="503: down"),
    ):
        c.delete_all("o", "u")


def test_a_hand_added_memory_keeps_its_request_id_across_retries() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        if len(seen) == 1:
            return httpx.Response(503, json={"error": "down"})
        return httpx.Response(202, json={"job_id": "j", "memory_id": "m", "status": "accepted"})

    with ms.Client("http://svc", transport=httpx.MockTransport(handler), backoff=0.01) as c:
        c.add_memory("o", "u", "Alice is vegetarian.")
    assert len(seen) == 2 and seen[0] == seen[1], "the same request id both times"


def test_no_server_is_a_connection_failure() -> None:
    with (
        ms.Client(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01) as c,
        pytest.raises(ms.ConnectionFailed),
    ):
        c.list("o", "u")


def test_errors_map_to_their_exceptions() -> None:
    for status, kind in [(401, ms.Unauthorized), (403, ms.Forbidden), (413, ms.TooLarge)]:
        transport = httpx.MockTransport(lambda r, s=status: httpx.Response(s, json={"error": "no"}))
        with ms.Client("http://svc", transport=transport) as c:
            with pytest.raises(kind) as err:
                c.list("o", "u")
            assert err.value.status_code == status and isinstance(err.value, ms.APIError)


def _sse(*chunks: Any) -> bytes:
    return b"".join(
        f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks
    )


def _delta(text: str) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}}],
    }


STREAM = _sse(
    _delta("Mapo "),
    _delta("tofu."),
    {"choices": [{"delta": {}, "finish_reason": "stop"}]},
    "[DONE]",
)
BROKEN = _sse(_delta("Mapo "), {"error": {"message": "the model stopped", "type": "x"}}, "[DONE]")


def test_chat_stream_yields_the_deltas_and_raises_on_an_error_chunk() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.read()))
        body = STREAM if len(bodies) == 1 else BROKEN
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with ms.Client("http://svc", transport=httpx.MockTransport(handler)) as c:
        assert list(c.chat_stream("o", "u", "What should I cook?")) == ["Mapo ", "tofu."]
        got: list[str] = []
        with pytest.raises(ms.APIError, match="the model stopped"):
            got.extend(c.chat_stream("o", "u", "again"))
        assert got == ["Mapo "]
    assert bodies[0]["stream"] is True and bodies[0]["message"] == "What should I cook?"
    no_model = httpx.MockTransport(lambda r: httpx.Response(503, json={"error": "no model"}))
    with ms.Client("http://svc", transport=no_model) as c, pytest.raises(ms.Unavailable):
        list(c.chat_stream("o", "u", "hi"))


async def test_async_chat_stream() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=STREAM))
    async with ms.AsyncClient("http://svc", transport=transport) as c:
        assert [t async for t in c.chat_stream("o", "u", "What should I cook?")] == [
            "Mapo ",
            "tofu.",
        ]
