"""Model backends against real HTTP servers: the scripted test server and a real local model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memstream.config import EmbedderSettings, LLMSettings, Settings
from memstream.consolidation import extract as lc
from memstream.consolidation.processor import JobProcessor
from memstream.embedder import Embedder, load_embedder
from memstream.llm import LLMClient, LLMOutputError, LLMUnavailable, load_llm
from memstream.llm.openai_backend import OpenAIBackend
from memstream.schemas import ChatMessage, ConsolidationJob, MemoryEvent, WindowTrigger
from memstream.sinks.base import MemoryFilter
from memstream.sinks.sqlite import SQLiteStore
from tests.support.llm_server import Faults, ScriptedLLM
from tests.support.smollm import smollm_server


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


def _client(server: ScriptedLLM, **kw: float) -> LLMClient:
    backend = OpenAIBackend("scripted", base_url=server.base_url, api_key="t", timeout=0.5)
    return LLMClient(backend, max_retries=int(kw.get("retries", 2)), backoff_seconds=0.01)


async def test_timeouts_are_retried_then_reported(llm_server: ScriptedLLM) -> None:
    llm_server.reset()
    llm_server.faults = Faults(rate=1.0, kinds=("timeout",), timeout_sleep=1.0)
    client = _client(llm_server, retries=1)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match="after 2 attempts"):
        await client.structured(
            step="consolidate",
            owner_id="o",
            messages=[{"role": "user", "content": "x"}],
            schema_name=lc.CONSOLIDATE.schema_name,
            schema=lc.CONSOLIDATE.schema(),
            parse=lc.CONSOLIDATE.parse,
        )
    assert 1.0 <= time.monotonic() - started < 5
    assert client.usage.errors["consolidate:transient"] == 2
    await client.close()


async def test_transient_faults_then_success_are_counted(llm_server: ScriptedLLM) -> None:
    llm_server.reset()
    llm_server.faults = Faults(rate=0.5, kinds=("429", "500"), seed=3)
    client = _client(llm_server, retries=6)
    for i in range(10):
        message = {
            "id": 1,
            "time": f"2024-01-0{i % 9 + 1} 10:00 Monday",
            "role": "user",
            "text": f"I like tea {i}",
        }
        payload = json.dumps({"messages": [message], "existing_memories": []})
        out = await client.structured(
            step="consolidate",
            owner_id=f"owner-{i % 2}",
            messages=lc.CONSOLIDATE.render("en", name="Ann", payload=payload),
            schema_name=lc.CONSOLIDATE.schema_name,
            schema=lc.CONSOLIDATE.schema(),
            parse=lc.CONSOLIDATE.parse,
        )
        assert out.facts[0].content == f"I like tea {i}"
    usage = client.usage.as_dict()
    assert usage["calls"] == 10 and usage["calls_by_owner"] == {"owner-0": 5, "owner-1": 5}
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert (
        client.usage.errors["consolidate:transient"] == sum(llm_server.faults_served.values()) > 0
    )
    await client.close()


async def test_output_invalid_twice_raises(llm_server: ScriptedLLM) -> None:
    llm_server.reset()
    llm_server.faults = Faults(rate=1.0, kinds=("malformed",))
    client = _client(llm_server)
    with pytest.raises(LLMOutputError):
        await client.structured(
            step="reflect",
            owner_id="o",
            messages=[{"role": "user", "content": "x"}],
            schema_name="memstream_reflection",
            schema={},
            parse=lambda d: d,
        )
    assert llm_server.calls["reflect"] == 2
    await client.close()


def test_openai_embedder_against_a_compatible_server(llm_server: ScriptedLLM) -> None:
    embedder = load_embedder(
        EmbedderSettings(
            backend="openai",
            model="scripted-embed",
            base_url=llm_server.base_url,
            api_key="t",
            dimensions=24,
            batch_size=2,
        )
    )
    vectors = embedder.embed(["a", "b", "c"])
    assert vectors.shape == (3, 24) and embedder.model_id == "openai:scripted-embed:24"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedder.embed(["b"])[0], vectors[1])
    with pytest.raises(ValueError, match="dimensions"):
        load_embedder(EmbedderSettings(backend="openai"))


@pytest.mark.servers
async def test_openai_backend_against_a_real_local_model(
    tmp_path: Path, embedder: Embedder
) -> None:
    """SmolLM2-135M via xllamacpp: too small for content, so structure only — the call goes
    out, JSON-schema output parses, usage is counted, and what is written is well-formed."""
    with smollm_server() as base_url:
        settings = Settings.load(
            data_dir=tmp_path,
            llm=LLMSettings(
                backend="openai",
                model="smollm2",
                base_url=base_url,
                timeout_seconds=120,
                max_output_tokens=400,
            ),
        )
        client = load_llm(settings.llm)
        assert client is not None
        events: list[MemoryEvent] = []

        async def publish(event: MemoryEvent) -> None:
            events.append(event)

        at = datetime(2024, 7, 10, 9, 0, tzinfo=UTC)
        job = ConsolidationJob(
            job_id="j1",
            owner_id="demo",
            user_id="alice",
            window_no=0,
            trigger=WindowTrigger.idle_gap,
            opened_at=at,
            messages=[
                ChatMessage(
                    message_id=f"m{i}",
                    owner_id="demo",
                    user_id="alice",
                    role="user",
                    speaker="Alice",
                    content=text,
                    sent_at=at + timedelta(minutes=i),
                )
                for i, text in enumerate(
                    ["I work at Alibaba in Hangzhou.", "Two months ago I ran a marathon."]
                )
            ],
        )
        async with SQLiteStore(tmp_path / "s.db") as store:
            processor = JobProcessor(settings, store, embedder, publish, llm=client)
            (outcome,) = await processor.process([job])
            assert outcome.error is None, outcome.error
            assert outcome.failure is None, outcome.detail
            usage = client.usage.as_dict()
            assert usage["calls_by_step"]["consolidate"] >= 1
            assert usage["prompt_tokens"] > 100 and usage["completion_tokens"] > 0
            written = await store.list_memories("demo", "alice", MemoryFilter(), limit=50)
            for node in written:
                assert node.content.strip() and node.vector is not None
                assert set(node.source_message_ids) <= {"m0", "m1"}
            assert len(events) == outcome.memories
        await client.close()


async def test_dashscope_backend_speaks_its_protocol(llm_server: ScriptedLLM) -> None:
    """The DashScope SDK against the scripted server's DashScope endpoint (no internet here)."""
    llm_server.reset()
    root = llm_server.base_url.removesuffix("/v1")
    client = load_llm(
        LLMSettings(
            backend="dashscope",
            model="qwen-plus",
            api_key="sk-test",
            base_url=f"{root}/api/v1",
            max_retries=1,
            backoff_seconds=0.01,
            cache_enabled=False,
        )
    )
    assert client is not None
    message = {
        "id": 1,
        "time": "2024-07-10 09:00 Wednesday",
        "role": "user",
        "text": "我在杭州工作。",
    }
    out = await client.structured(
        step="consolidate",
        owner_id="o",
        messages=lc.CONSOLIDATE.render(
            "zh", name="小李", payload=json.dumps({"messages": [message]})
        ),
        schema_name=lc.CONSOLIDATE.schema_name,
        schema=lc.CONSOLIDATE.schema(**lc.consolidation_bounds(1)),
        parse=lc.CONSOLIDATE.parse,
    )
    assert out.facts[0].content == "我在杭州工作。"
    assert client.usage.as_dict()["calls"] == 1 and client.usage.prompt_tokens["consolidate"] > 0
    llm_server.faults = Faults(rate=1.0, kinds=("429",))
    with pytest.raises(LLMUnavailable):
        await client.structured(
            step="consolidate",
            owner_id="o",
            messages=[{"role": "user", "content": "x"}],
            schema_name=lc.CONSOLIDATE.schema_name,
            schema=lc.CONSOLIDATE.schema(**lc.consolidation_bounds(1)),
            parse=lc.CONSOLIDATE.parse,
        )
    await client.close()
