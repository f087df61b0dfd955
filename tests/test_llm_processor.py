"""The LLM job steps against a real SQLite store and the scripted OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memstream.config import Settings
from memstream.consolidation.processor import JobProcessor
from memstream.consolidation.scheduler import ReflectionScheduler
from memstream.embedder import Embedder
from memstream.llm import LLMUsage, load_llm
from memstream.schemas import (
    ChatMessage,
    ConsolidationJob,
    DlqReason,
    MemoryEvent,
    MemoryType,
    ReflectionJob,
    StoreStatus,
    WindowTrigger,
    job_id_for,
)
from memstream.sinks.base import MemoryFilter
from memstream.sinks.sqlite import SQLiteStore
from tests.support.llm_server import Faults, ScriptedLLM
from tests.support.memories import FOOD_MESSAGES

ALL = MemoryFilter(statuses=(StoreStatus.valid, StoreStatus.expired))


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


class Rig:
    def __init__(self, settings: Settings, store: SQLiteStore, embedder: Embedder) -> None:
        self.usage = LLMUsage()
        self.events: list[MemoryEvent] = []
        self.scheduler = ReflectionScheduler(threshold=6, min_interval=0)
        self.store = store

        async def publish(event: MemoryEvent) -> None:
            self.events.append(event)

        self.processor = JobProcessor(
            settings,
            store,
            embedder,
            publish,
            llm=load_llm(settings.llm, usage=self.usage),
            scheduler=self.scheduler,
        )
        self._n = 0

    async def say(self, *texts: str, at: datetime, user: str = "alice", speaker: str = "Alice"):
        messages = []
        for text in texts:
            self._n += 1
            messages.append(
                ChatMessage(
                    message_id=f"m{self._n}",
                    owner_id="demo",
                    user_id=user,
                    role="user",
                    speaker=speaker,
                    content=text,
                    sent_at=at + timedelta(seconds=self._n),
                )
            )
        job = ConsolidationJob(
            job_id=job_id_for("demo", user, [m.message_id for m in messages]),
            owner_id="demo",
            user_id=user,
            window_no=self._n,
            trigger=WindowTrigger.idle_gap,
            messages=messages,
            opened_at=at,
        )
        (outcome,) = await self.processor.process([job])
        return outcome

    async def reflect(self, user: str = "alice"):
        job = ReflectionJob(job_id=f"r{self._n}", owner_id="demo", user_id=user, unreflected=6)
        (outcome,) = await self.processor.process([job])
        return outcome

    async def memories(self, user: str = "alice"):
        return await self.store.list_memories("demo", user, ALL, limit=500)


@pytest.fixture
async def rig(llm_server: ScriptedLLM, tmp_path: Path, embedder: Embedder) -> AsyncIterator[Rig]:
    llm_server.reset()
    env = llm_server.settings_env()
    settings = Settings.load(
        data_dir=tmp_path,
        llm={
            "backend": "openai",
            "model": "scripted",
            "base_url": env["MEMSTREAM_LLM__BASE_URL"],
            "api_key": "test",
            "timeout_seconds": 1.0,
            "backoff_seconds": 0.01,
            "max_retries": 2,
        },
    )
    async with SQLiteStore(tmp_path / "store.db") as store:
        r = Rig(settings, store, embedder)
        yield r
        assert r.processor.llm is not None
        await r.processor.llm.close()


T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


async def test_fiction_yields_no_memory(rig: Rig, llm_server: ScriptedLLM) -> None:
    outcome = await rig.say("Write a story where I am a pilot who lives in Paris.", at=T0)
    assert outcome.failure is None and outcome.error is None
    assert await rig.memories() == []
    assert llm_server.calls["consolidate"] == 1


async def test_new_employer_expires_the_old_one(rig: Rig) -> None:
    await rig.say("I work at Alibaba as an engineer.", at=T0)
    await rig.say("I just joined Meituan, first week done!", at=T0 + timedelta(weeks=5))
    nodes = {n.content: n for n in await rig.memories()}
    alibaba = nodes["I work at Alibaba as an engineer."]
    meituan = nodes["I just joined Meituan, first week done!"]
    assert meituan.store_status is StoreStatus.valid and meituan.valid_to is None
    assert alibaba.store_status is StoreStatus.expired
    assert alibaba.valid_to == meituan.valid_from
    assert alibaba.version == 2
    # Both changes are on the log, each with its version.
    assert {(e.memory_id, e.version) for e in rig.events} >= {
        (alibaba.memory_id, 1),
        (alibaba.memory_id, 2),
        (meituan.memory_id, 1),
    }


async def test_repeated_fact_is_not_duplicated(rig: Rig) -> None:
    await rig.say("I have a cat named Mochi.", at=T0)
    await rig.say("I have a cat named Mochi.", at=T0 + timedelta(days=3))
    nodes = await rig.memories()
    assert len(nodes) == 1
    assert nodes[0].source_message_ids == ["m1", "m2"]  # provenance of both mentions


async def test_relative_event_time(rig: Rig) -> None:
    at = datetime(2024, 7, 10, 10, 0, tzinfo=UTC)
    await rig.say("Two months ago I ran a marathon in Hangzhou.", at=at)
    (node,) = await rig.memories()
    assert (node.event_time.year, node.event_time.month) == (2024, 5)
    assert node.valid_from == datetime(2024, 5, 1, tzinfo=UTC)
    assert node.message_time.date() == at.date()


async def test_chinese_stays_chinese(rig: Rig, llm_server: ScriptedLLM) -> None:
    await rig.say("我在阿里巴巴工作，平时喜欢吃麻婆豆腐。", at=T0, user="li", speaker="小李")
    (node,) = await rig.memories("li")
    assert node.content == "我在阿里巴巴工作，平时喜欢吃麻婆豆腐。"
    assert node.language == "zh"
    system = llm_server.requests[-1]["messages"][0]["content"]
    assert "用户" in system  # the Chinese prompt was used


async def test_reflection_makes_a_diet_insight(rig: Rig, llm_server: ScriptedLLM) -> None:
    for i, text in enumerate(FOOD_MESSAGES):
        await rig.say(text, at=T0 + timedelta(days=i))
    assert rig.scheduler.take_due(now=0.0) == [("demo/alice", 6)]
    outcome = await rig.reflect()
    assert outcome.failure is None
    insights = [n for n in await rig.memories() if n.memory_type is MemoryType.insight]
    assert [i.key for i in insights] == ["diet"]
    assert insights[0].content.startswith("The diet of Alice: ")
    assert insights[0].vector is not None
    observations = [n for n in await rig.memories() if n.memory_type is MemoryType.observation]
    assert all(o.obs_reflected for o in observations)
    assert llm_server.calls["reflect"] == 1
    # Nothing new to reflect on: the next reflection job costs no call.
    await rig.reflect()
    assert llm_server.calls["reflect"] == 1


async def test_malformed_output_is_retried_then_dead_lettered(
    rig: Rig, llm_server: ScriptedLLM
) -> None:
    llm_server.faults = Faults(rate=1.0, kinds=("malformed",))
    outcome = await rig.say("I live in Shanghai.", at=T0)
    assert outcome.failure is DlqReason.llm_output_invalid
    assert llm_server.calls["consolidate"] == 2  # the first answer and one retry
    assert await rig.memories() == []


async def test_unavailable_model_is_dead_lettered(rig: Rig, llm_server: ScriptedLLM) -> None:
    llm_server.faults = Faults(rate=1.0, kinds=("429", "500"))
    outcome = await rig.say("I live in Shanghai.", at=T0)
    assert outcome.failure is DlqReason.llm_unavailable
    assert sum(llm_server.faults_served.values()) == 3  # max_retries=2 -> 3 attempts
    assert rig.usage.errors["consolidate:transient"] == 3


async def test_cache_makes_a_replay_free(rig: Rig, llm_server: ScriptedLLM) -> None:
    first = await rig.say("I play the violin on Sundays.", at=T0)
    calls = llm_server.calls["consolidate"]
    rig._n -= 1  # the same message again: same job, same prompt
    again = await rig.say("I play the violin on Sundays.", at=T0)
    assert llm_server.calls["consolidate"] == calls
    assert rig.usage.cached["consolidate"] == 1
    assert first.memories == again.memories == 1
    assert len(await rig.memories()) == 1
