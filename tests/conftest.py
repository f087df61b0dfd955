"""Fixtures: real servers (session-scoped), a shared embedder, stores for both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from memstream.config import EmbedderSettings
from memstream.embedder import Embedder, load_embedder
from memstream.sinks.base import MemoryStore
from memstream.sinks.elasticsearch import ElasticsearchStore
from memstream.sinks.sqlite import SQLiteStore
from tests.support.servers import Noida, Tansu


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def tansu(workdir: Path) -> Iterator[Tansu]:
    server = Tansu(workdir)
    yield server
    server.close()


@pytest.fixture(scope="session")
def noida(workdir: Path) -> Iterator[Noida]:
    server = Noida(workdir)
    yield server
    server.close()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder(EmbedderSettings())


@pytest.fixture(scope="session")
def sparse_embedder() -> Embedder:
    """The default embedder with the opt-in SPLADE channel."""
    return load_embedder(EmbedderSettings(sparse="splade-tiny"))


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-inline",  # the query service's variant: searches on the caller's thread
        pytest.param("elasticsearch", marks=pytest.mark.servers),
    ]
)
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(
    store_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[MemoryStore]:
    """A fresh, empty store of each backend (ES: a new alias prefix on the shared noida)."""
    s: MemoryStore
    if store_backend.startswith("sqlite"):
        s = SQLiteStore(tmp_path / "store.db", inline_search=store_backend == "sqlite-inline")
    else:
        noida: Noida = request.getfixturevalue("noida")
        s = ElasticsearchStore(
            noida.url,
            dimensions=384,
            prefix=f"test-{uuid.uuid4().hex[:10]}",
            refresh_on_write=True,
        )
    async with s:
        yield s


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per fault the fault suite applied: cases, lost, duplicated, leaked, 5xx."""
    from tests.support.faults import OUTCOMES

    if OUTCOMES:
        terminalreporter.section("fault suite")
        for outcome in OUTCOMES:
            terminalreporter.write_line(outcome.line())
