"""``memstream versions``: list and drop store versions (no broker, no model needed)."""

from __future__ import annotations

from memstream.config import Settings
from memstream.sinks import open_store
from memstream.sinks.base import StoreVersion

#: The local default's size; an API embedder states its own in the settings.
MINILM_DIMENSIONS = 384


def _dimensions(settings: Settings) -> int:
    return settings.embedder.dimensions or MINILM_DIMENSIONS


async def list_versions(settings: Settings) -> list[StoreVersion]:
    async with open_store(settings.store, dimensions=_dimensions(settings)) as store:
        return await store.versions()


async def drop_version(settings: Settings, version: int) -> None:
    async with open_store(settings.store, dimensions=_dimensions(settings)) as store:
        await store.drop_version(version)
