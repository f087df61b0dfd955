"""The store interface every backend implements; one contract test suite runs against all."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from memstream.schemas.memory import MemoryNode, MemoryType, StoreStatus

#: What recall looks at unless told otherwise: MemoryScope recalls valid memories only.
VALID_ONLY: tuple[StoreStatus, ...] = (StoreStatus.valid,)
ALL_TYPES: tuple[MemoryType, ...] = tuple(MemoryType)


@dataclass(frozen=True)
class WriteResult:
    """``applied`` were newer than what the store had; ``stale`` were equal or older (no-op)."""

    applied: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Hit:
    node: MemoryNode
    score: float


class Channels(NamedTuple):
    """One recall's hits per channel, each best first."""

    dense: list[Hit]
    text: list[Hit]
    sparse: list[Hit]


@dataclass(frozen=True)
class MemoryFilter:
    types: tuple[MemoryType, ...] = ALL_TYPES
    statuses: tuple[StoreStatus, ...] = VALID_ONLY


class VersionState(StrEnum):
    building = "building"
    """Being written by a rebuild; never served. A rebuild that stops leaves it so."""
    live = "live"
    """What readers and writers use: exactly one version is live."""
    retired = "retired"
    """Was live; kept until dropped, so a switch can be undone."""
    dropped = "dropped"
    """Its data is gone; the number stays taken (a rebuild's events carry it as their
    generation, so it is never given to another version)."""


class StoreError(Exception):
    """A store could not do what was asked. The base of every store error, so callers (the
    CLI, the worker's retries) catch the store's failures and nothing else."""


class StoreVersionError(StoreError):
    """A version operation that cannot be done (unknown version, dropping the live one)."""


class StoreModelError(StoreError):
    """The live version's vectors come from another embedding model than the configured
    one: the two vector spaces are not comparable (both may have 384 dimensions)."""


class StoreWriteError(StoreError):
    """Writes or deletes the store refused (the job is retried, then dead-lettered)."""


class StoreQueryError(StoreError):
    """A search the store could not answer."""


def check_mark(state: VersionState) -> None:
    """``mark_version`` records non-live states only: going live is :meth:`switch_to`."""
    if state is VersionState.live:
        raise StoreVersionError("use switch_to to make a version live")


def check_exists(version: int, state: VersionState | None) -> None:
    if state is None or state is VersionState.dropped:
        raise StoreVersionError(f"store version {version} does not exist")


def check_drop(version: int, state: VersionState | None) -> None:
    """A version may be dropped when it exists and is not the live one."""
    check_exists(version, state)
    if state is VersionState.live:
        raise StoreVersionError(f"store version {version} is live; not dropped")


class StoreVersion(BaseModel):
    """One version of a store, as ``memstream versions`` lists it."""

    model_config = ConfigDict(frozen=True)

    version: int
    state: VersionState
    source: str
    """initial, events, events+reembed or messages: what the version was built from."""
    embedding_model: str | None
    dimensions: int | None
    created_at: datetime
    switched_at: datetime | None
    memories: int


class MemoryStore(ABC):
    """A memory index. Writes are idempotent and version-gated: only a higher version lands."""

    backend: str

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create the schema/index if it does not exist yet."""

    @abstractmethod
    async def close(self) -> None: ...

    # -- versions: a rebuild writes a new one, then switches readers and writers to it ----------
    @abstractmethod
    async def versions(self) -> list[StoreVersion]:
        """Every version not dropped, oldest first, with its memory count."""

    @abstractmethod
    async def create_version(
        self, source: str, *, embedding_model: str | None, dimensions: int | None
    ) -> int:
        """A new, empty version in state ``building``; returns its number."""

    @abstractmethod
    async def switch_to(self, version: int) -> int | None:
        """Make ``version`` live in one atomic step; returns the version that was live
        (it becomes ``retired`` and is kept)."""

    @abstractmethod
    async def mark_version(self, version: int, state: VersionState) -> None:
        """Record a non-live state (``building`` or ``retired``)."""

    @abstractmethod
    async def drop_version(self, version: int) -> None:
        """Delete the data of a version that is not live; its number is never reused."""

    @abstractmethod
    def at_version(self, version: int) -> MemoryStore:
        """A store (not yet opened) bound to one version instead of following the live one."""

    @abstractmethod
    async def upsert(self, nodes: Sequence[MemoryNode]) -> WriteResult:
        """Write each node unless the store holds the same id at an equal or higher version."""

    @abstractmethod
    async def delete(
        self, owner_id: str, user_id: str, memory_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Remove the given memories of one user (``None``: all of them); returns the ids
        that existed. Used by management deletes and by forgetting a user."""

    @abstractmethod
    async def get(self, owner_id: str, user_id: str, memory_id: str) -> MemoryNode | None: ...

    @abstractmethod
    async def list_memories(
        self,
        owner_id: str,
        user_id: str,
        flt: MemoryFilter = MemoryFilter(),
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> list[MemoryNode]:
        """Newest message time first."""

    @abstractmethod
    async def count(
        self,
        owner_id: str | None = None,
        user_id: str | None = None,
        flt: MemoryFilter | None = None,
    ) -> int:
        """Memories of one user, one owner, or all (``flt=None``: any type and status)."""

    @abstractmethod
    async def search_vector(
        self,
        owner_id: str,
        user_id: str,
        vector: npt.NDArray[np.float32],
        k: int,
        flt: MemoryFilter = MemoryFilter(),
        *,
        vectors: bool = True,
    ) -> list[Hit]:
        """Top-k by cosine similarity (score in [-1, 1]), best first. ``vectors=False``
        leaves the hits' vectors out: retrieval never needs them, and decoding 384 floats
        per hit is most of a search's cost."""

    @abstractmethod
    async def search_text(
        self,
        owner_id: str,
        user_id: str,
        text: str,
        k: int,
        flt: MemoryFilter = MemoryFilter(),
        *,
        vectors: bool = True,
    ) -> list[Hit]:
        """Top-k by BM25 (score > 0, higher is better), best first."""

    async def search_hybrid(
        self,
        owner_id: str,
        user_id: str,
        vector: npt.NDArray[np.float32] | None,
        text: str | None,
        k: int,
        flt: MemoryFilter = MemoryFilter(),
        *,
        terms: Mapping[int, float] | None = None,
        vectors: bool = True,
    ) -> Channels:
        """Every recall channel at once: dense (``vector``), keyword (``text``) and learned
        sparse (``terms``); a channel given ``None`` is skipped. Stores that can answer in
        one round trip override this; the sparse channel needs an override."""

        async def dense() -> list[Hit]:
            if vector is None:
                return []
            return await self.search_vector(owner_id, user_id, vector, k, flt, vectors=vectors)

        async def lexical() -> list[Hit]:
            if text is None:
                return []
            return await self.search_text(owner_id, user_id, text, k, flt, vectors=vectors)

        dense_hits, text_hits = await asyncio.gather(dense(), lexical())
        return Channels(dense_hits, text_hits, [])

    async def latest_embedding_model(self) -> str | None:
        """The embedding model of the newest memory with a vector (None: no such memory)."""
        return None

    async def check_embedder(self, model_id: str) -> None:
        """Refuse to mix vector spaces: a worker writing, or a service searching, with
        another model than the one the live memories were embedded with."""
        found = await self.latest_embedding_model()
        if found is not None and found != model_id:
            raise StoreModelError(
                f"the store's memories are embedded with {found}, this process is configured "
                f"with {model_id}: re-embed them with `memstream rebuild --from events "
                "--reembed` (it switches when done), or set MEMSTREAM_EMBEDDER__BACKEND to "
                "the store's model"
            )

    async def refresh(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Make completed writes visible to searches (a no-op where they already are)."""

    async def erase_user(self, owner_id: str, user_id: str) -> list[str]:
        """Forget a user: their memories go from every version kept (live, retired and
        building, so that switching back cannot bring them back), then :meth:`purge` leaves
        nothing of them recoverable in the store's files. Returns the ids that were live."""
        removed = await self.delete(owner_id, user_id)
        for version in await self.versions():
            async with self.at_version(version.version) as other:
                await other.delete(owner_id, user_id)
        await self.purge()
        return removed

    async def purge(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Make deleted content unrecoverable from the store's own files (SQLite: merge the
        text index, checkpoint the WAL; Elasticsearch: expunge deleted documents)."""
