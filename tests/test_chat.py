"""Chat with memory: the query service with the scripted model, a real store and the broker
for the turns it puts on the log; and the terminal client against the running service."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from memstream.config import Settings
from memstream.embedded import free_port
from memstream.embedder import Embedder
from memstream.llm import load_llm
from memstream.query.app import create_service
from memstream.query.terminal import TerminalChat
from memstream.schemas import ChatMessage, MemoryNode
from memstream.sinks.sqlite import SQLiteStore
from memstream.streams.topics import create_topics
from tests.support.llm_server import ScriptedLLM
from tests.support.memories import observation
from tests.support.pipeline import pipeline_env, read_topic
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers

TZ = timezone(timedelta(hours=8))
AT = datetime(2024, 7, 10, 20, 0, tzinfo=TZ)


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


def settings_for(tansu: Tansu, tmp_path: Path, llm_server: ScriptedLLM) -> Settings:
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    env.update(llm_server.settings_env())
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        return Settings.load()


async def seed(store: SQLiteStore, embedder: Embedder, texts: list[str]) -> list[MemoryNode]:
    nodes = [
        observation(embedder, text, datetime(2024, 6, 1 + i, 12, tzinfo=UTC), f"s{i}")
        for i, text in enumerate(texts)
    ]
    await store.upsert(nodes)
    return nodes


async def test_chat_uses_memories_and_puts_turns_on_the_log(
    tansu: Tansu, tmp_path: Path, embedder: Embedder, llm_server: ScriptedLLM
) -> None:
    llm_server.reset()
    settings = settings_for(tansu, tmp_path, llm_server)
    await create_topics(settings.kafka)
    async with SQLiteStore(tmp_path / "c.db") as store:
        await seed(
            store,
            embedder,
            ["I am vegetarian and love spicy food.", "I play the violin on Sundays."],
        )
        service = create_service(settings, store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            body = {
                "owner_id": "demo",
                "user_id": "alice",
                "speaker": "Alice",
                "message": "What should I cook tonight?",
                "at": AT.isoformat(),
                "top_k": 5,
            }
            r = await client.post("/v1/chat", json=body)
            assert r.status_code == 200, r.text
            first = r.json()
            follow = (
                await client.post(
                    "/v1/chat",
                    json={**body, "message": "我明天晚上做什么菜好？", "remember": False},
                )
            ).json()
    assert first["answer"] == "I remember."
    system = first["system_prompt"]
    assert "The current time is 2024-07-10 20:00:00 Wednesday" in system
    assert "[2024-06-01 12:00:00 Saturday] I am vegetarian and love spicy food." in system
    assert first["memories"][0]["content"] == "I am vegetarian and love spicy food."
    # The model saw exactly this prompt.
    sent = [r for r in llm_server.requests if r["messages"][-1]["content"].startswith("What")]
    assert sent[0]["messages"][0]["content"] == system
    assert llm_server.calls["chat"] == 2
    # The second turn: Chinese prompt, and the first exchange as recent conversation.
    assert "现在的时间是" in follow["system_prompt"]
    assert "user: What should I cook tonight?" in follow["system_prompt"]
    assert "assistant: I remember." in follow["system_prompt"]
    assert follow["message_ids"] == []
    # Both turns of the first exchange are on the messages topic, as chat messages.
    values = await read_topic(
        settings.kafka.bootstrap_servers, settings.kafka.messages_topic, expect=2, timeout=15
    )
    turns = [ChatMessage.model_validate_json(v) for v in values]
    assert [t.message_id for t in turns] == first["message_ids"]
    assert [(t.role, t.content) for t in turns] == [
        ("user", "What should I cook tonight?"),
        ("assistant", "I remember."),
    ]
    assert turns[0].sent_at == AT and turns[0].speaker == "Alice"


def sse_events(text: str) -> list[Any]:
    """The data of each server-sent event ("[DONE]" as the string)."""
    data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    return [d if d == "[DONE]" else json.loads(d) for d in data]


async def test_chat_streams_token_by_token_and_remembers_the_whole_answer(
    tansu: Tansu, tmp_path: Path, embedder: Embedder, llm_server: ScriptedLLM
) -> None:
    llm_server.reset()
    llm_server.chat_answer = "Mapo tofu, since you love spicy food."
    settings = settings_for(tansu, tmp_path, llm_server)
    await create_topics(settings.kafka)
    async with SQLiteStore(tmp_path / "s.db") as store:
        await seed(store, embedder, ["I am vegetarian and love spicy food."])
        service = create_service(settings, store=store, embedder=embedder)
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            body = {
                "owner_id": "demo",
                "user_id": "alice",
                "message": "What should I cook tonight?",
                "at": AT.isoformat(),
                "stream": True,
            }
            r = await client.post("/v1/chat", json=body)
            assert r.status_code == 200 and r.headers["content-type"].startswith(
                "text/event-stream"
            )
            events = sse_events(r.text)
            llm_server.cut_streams = True  # the model server dies after its first token
            cut = sse_events((await client.post("/v1/chat", json=body)).text)
            llm_server.cut_streams = False
            llm_server.faults.rate, llm_server.faults.kinds = 1.0, ("500",)
            failed = await client.post("/v1/chat", json=body)
    llm_server.reset()  # the module's server, as the other tests expect it
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert "".join(deltas) == "Mapo tofu, since you love spicy food."
    assert len([d for d in deltas if d]) == 7, "one delta per word, as the model sent them"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["memstream"]["memories"][0]["content"] == "I am vegetarian and love spicy food."
    assert len(last["memstream"]["message_ids"]) == 2
    # Mid-answer failure: the text so far, an error chunk, no memstream extras.
    assert cut[0]["choices"][0]["delta"]["content"] == "Mapo "
    assert "error" in cut[-2] and cut[-1] == "[DONE]"
    assert not any(isinstance(c, dict) and "memstream" in c for c in cut)
    # Failure before the first token: the same 502 as without streaming.
    assert failed.status_code == 502
    # Only the whole exchange went on the log (not the cut one).
    values = await read_topic(
        settings.kafka.bootstrap_servers, settings.kafka.messages_topic, expect=2, timeout=15
    )
    turns = [ChatMessage.model_validate_json(v) for v in values]
    assert [t.message_id for t in turns] == last["memstream"]["message_ids"]
    assert turns[1].content == "Mapo tofu, since you love spicy food."


class ServiceThread:
    """The query service on a real port (uvicorn in a thread)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_terminal_client(
    tansu: Tansu, tmp_path: Path, embedder: Embedder, llm_server: ScriptedLLM
) -> None:
    import asyncio

    settings = settings_for(tansu, tmp_path, llm_server)
    asyncio.run(create_topics(settings.kafka))
    seeded: list[MemoryNode] = []

    async def prepare() -> None:
        async with SQLiteStore(tmp_path / "t.db") as s:
            seeded.extend(await seed(s, embedder, ["I am vegetarian."]))

    asyncio.run(prepare())
    store = SQLiteStore(tmp_path / "t.db")
    llm = load_llm(settings.llm)
    app = create_service(settings, store=store, embedder=embedder, llm=llm)

    @app.on_event("startup")
    async def open_store() -> None:
        await store.open()

    inputs = iter(
        [
            "/help",
            "/list",
            "What do I eat?",
            "/add I am allergic to nuts",
            f"/delete {seeded[0].memory_id[:8]}",
            "/delete zzz",
            "/forget",
            "no",
            "/bogus",
            "/exit",
        ]
    )
    out: list[str] = []
    streamed: list[str] = []

    def write(text: str) -> None:
        streamed.append(text)
        if text.endswith("\n"):  # a streamed answer ends its line
            out.append("".join(streamed).rstrip("\n"))
            streamed.clear()

    with ServiceThread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        TerminalChat(
            client,
            "demo",
            "alice",
            speaker="Alice",
            say=out.append,
            ask=lambda prompt: next(inputs),
            write=write,
        ).run()
    text = "\n".join(out)
    assert "/forget" in text and "commands:" in text  # /help
    assert "I am vegetarian." in text and "(1 in all)" in text  # /list
    assert "assistant> I remember." in text  # a chat turn
    assert "added " in text  # /add accepted (on the jobs topic)
    assert f"deleting {seeded[0].memory_id[:12]}" in text
    assert "no memory matches 'zzz'" in text
    assert "kept" in text  # /forget answered "no"
    assert "unknown or incomplete command '/bogus'" in text


async def test_chat_retrieves_exactly_as_retrieve_does(
    tmp_path: Path, embedder: Embedder, llm_server: ScriptedLLM
) -> None:
    """One Retriever behind both routes: a top_k above recall_k, the configured reranker and
    include_expired reach chat as they reach /v1/retrieve (chat once skipped all three)."""
    from memstream.rerank import CrossEncoderReranker
    from memstream.schemas import StoreStatus

    llm_server.reset()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in llm_server.settings_env().items():
            mp.setenv(k, v)
        mp.setenv("MEMSTREAM_API__RECALL_K", "2")
        settings = Settings.load(data_dir=tmp_path)
    # Shortest document first: an order fusion alone would not give.
    reranker = CrossEncoderReranker(lambda pairs: [-float(len(doc)) for _, doc in pairs])
    texts = [
        "I cook spicy Sichuan food every weekend.",
        "My favourite dish to cook is mapo tofu.",
        "I learned to cook from my grandmother.",
        "Cooking pasta.",
        "I used to cook only instant noodles, years ago.",
    ]
    async with SQLiteStore(tmp_path / "same.db") as store:
        nodes = await seed(store, embedder, texts)
        expired = nodes[4].model_copy(update={"store_status": StoreStatus.expired, "version": 2})
        await store.upsert([expired])
        service = create_service(settings, store=store, embedder=embedder, reranker=reranker)
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            common = {"owner_id": "demo", "user_id": "alice", "at": AT.isoformat(), "top_k": 5}
            for extra in ({}, {"include_expired": True}, {"rerank": False}):
                asked = {**common, **extra}
                retrieved = await client.post(
                    "/v1/retrieve", json={**asked, "query": "What do I like to cook?"}
                )
                chatted = await client.post(
                    "/v1/chat",
                    json={**asked, "message": "What do I like to cook?", "remember": False},
                )
                assert retrieved.status_code == 200 and chatted.status_code == 200
                ids = [(m["memory_id"], m["score"]) for m in retrieved.json()["memories"]]
                assert ids == [(m["memory_id"], m["score"]) for m in chatted.json()["memories"]]
                assert len(ids) == (5 if extra.get("include_expired") else 4)  # > recall_k
                if extra.get("rerank") is not False:  # the reranker's order: shortest first
                    contents = [m["content"] for m in retrieved.json()["memories"]]
                    assert contents == sorted(contents, key=len)
