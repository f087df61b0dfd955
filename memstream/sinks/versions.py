"""``memstream versions``: list and drop store versions (no broker, no model needed)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from memstream.config import Settings
from memstream.sinks import open_store
from memstream.sinks.base import VersionState

#: The local default's size; an API embedder states its own in the settings.
MINILM_DIMENSIONS = 384


class VersionInfo(BaseModel):
    version: int
    state: VersionState
    source: str
    embedding_model: str | None
    dimensions: int | None
    created_at: datetime
    switched_at: datetime | None
    memories: int


def _dimensions(settings: Settings) -> int:
    return settings.embedder.dimensions or MINILM_DIMENSIONS


async def list_versions(settings: Settings) -> list[VersionInfo]:
    async with open_store(settings.store, dimensions=_dimensions(settings)) as store:
        return [VersionInfo.model_validate(v, from_attributes=True) for v in await store.versions()]


async def drop_version(settings: Settings, version: int) -> None:
    async with open_store(settings.store, dimensions=_dimensions(settings)) as store:
        await store.drop_version(version)
