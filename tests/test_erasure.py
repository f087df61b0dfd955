"""Erasure leaves nothing behind: after a forget, and after rebuilds from events and from
messages, the forgotten user's words are found in none of the store's files (database and
WAL) and none of the LLM response cache's. A byte-level scan, through the real pipeline
with a generation model (so the cache holds answers that quote the user)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memstream.config import Settings
from memstream.rebuild.run import run_rebuild
from memstream.schemas import ChatMessage, ForgetJob, StoreStatus
from memstream.sinks import MemoryFilter, open_store
from memstream.streams.producer import MessageProducer
from memstream.streams.topics import create_topics
from tests.support.faults import FaultOutcome, record
from tests.support.llm_server import ScriptedLLM
from tests.support.pipeline import Worker, pipeline_env, settings_from, wait_for
from tests.support.servers import Tansu

pytestmark = [pytest.mark.servers, pytest.mark.faults]

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
#: Words only the forgotten user said, and words only their neighbour said.
ERASED = b"zebrafish7731"
KEPT = b"platypus5512"


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


def said(user: str, texts: list[str], day: int) -> list[ChatMessage]:
    return [
        ChatMessage(
            message_id=f"{user}-{day}-{i}",
            owner_id="acme",
            user_id=user,
            role="user",
            speaker=user.title(),
            content=text,
            sent_at=T0 + timedelta(days=day, minutes=i),
        )
        for i, text in enumerate(texts)
    ]


def found_in_files(settings: Settings, needle: bytes) -> dict[str, int]:
    """Occurrences of ``needle`` in the store's and the cache's files, WALs included."""
    assert settings.store.sqlite_path is not None and settings.llm.cache_path is not None
    hits: dict[str, int] = {}
    for base in (settings.store.sqlite_path, settings.llm.cache_path):
        for path in (base, base.with_name(base.name + "-wal")):
            if path.exists():
                hits[path.name] = path.read_bytes().count(needle)
    return hits


async def count(settings: Settings, user: str) -> int:
    async with open_store(settings.store, dimensions=384) as store:
        everything = MemoryFilter(statuses=tuple(StoreStatus))
        return await store.count("acme", user, everything)


async def test_a_forgotten_user_leaves_no_bytes_in_store_or_cache_files_even_after_rebuilds(
    tansu: Tansu, tmp_path: Path, llm_server: ScriptedLLM
) -> None:
    llm_server.reset()
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    env.update(llm_server.settings_env())
    settings = settings_from(env)
    await create_topics(settings.kafka)
    alice = said(
        "alice",
        [
            f"I work at {ERASED.decode()} Labs as a data engineer.",
            f"My dog is called {ERASED.decode()} and she loves the beach.",
        ],
        0,
    )
    bob = said("bob", [f"I play the violin with the {KEPT.decode()} quartet."], 0)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        async with MessageProducer(settings.kafka) as producer:
            await producer.send_many(alice + bob)

        async def remembered() -> bool:
            return await count(settings, "alice") >= 2 and await count(settings, "bob") >= 1

        assert await wait_for(remembered, 120, alive=worker.alive)
        before = found_in_files(settings, ERASED)
        assert sum(before.values()) > 0, before  # the scan sees what is there
        assert (
            found_in_files(settings, ERASED).get("llm-cache.db", 0)
            + found_in_files(settings, ERASED).get("llm-cache.db-wal", 0)
            > 0
        )  # the model's answers quote alice

        async with MessageProducer(settings.kafka) as producer:
            await producer.forget(
                ForgetJob(job_id="forget-alice", owner_id="acme", user_id="alice")
            )

        async def forgotten() -> bool:
            return (
                await count(settings, "alice") == 0
                and sum(found_in_files(settings, ERASED).values()) == 0
            )

        assert await wait_for(forgotten, 60, alive=worker.alive), found_in_files(settings, ERASED)
        for source in ("events", "messages"):
            await run_rebuild(settings, source, settle_seconds=1)
            assert await count(settings, "alice") == 0, source
            assert sum(found_in_files(settings, ERASED).values()) == 0, (
                source,
                found_in_files(settings, ERASED),
            )
        await run_rebuild(settings, "events", settle_seconds=1)
        outcome = record(
            FaultOutcome(
                "erasure, then rebuilds from events, messages, events (byte scan)",
                len(alice),
                leaked=sum(found_in_files(settings, ERASED).values()),
            )
        )
        assert outcome.leaked == 0
        assert sum(found_in_files(settings, KEPT).values()) > 0  # bob is still remembered
        assert await count(settings, "bob") >= 1
    finally:
        worker.stop()
