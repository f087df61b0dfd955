"""Stores: one interface (:class:`MemoryStore`), one file per backend."""

from __future__ import annotations

from memstream.config import StoreSettings
from memstream.sinks.base import (
    Channels,
    Hit,
    MemoryFilter,
    MemoryStore,
    StoreError,
    StoreModelError,
    StoreQueryError,
    StoreVersionError,
    StoreWriteError,
    WriteResult,
)


def open_store(settings: StoreSettings, *, dimensions: int, serving: bool = False) -> MemoryStore:
    """The configured backend (not yet opened: use ``async with``). ``serving``: tuned for
    the query service's many small concurrent searches (SQLite: searches run inline)."""
    if settings.backend == "sqlite":
        from memstream.sinks.sqlite import SQLiteStore

        assert settings.sqlite_path is not None, "Settings fills sqlite_path from data_dir"
        return SQLiteStore(settings.sqlite_path, inline_search=serving)
    from memstream.sinks.elasticsearch import ElasticsearchStore

    return ElasticsearchStore(
        settings.elasticsearch_url,
        dimensions=dimensions,
        prefix=settings.index_prefix,
        api_key=settings.elasticsearch_api_key,
        request_timeout=settings.request_timeout,
    )


__all__ = [
    "Channels",
    "Hit",
    "MemoryFilter",
    "MemoryStore",
    "StoreError",
    "StoreModelError",
    "StoreQueryError",
    "StoreVersionError",
    "StoreWriteError",
    "WriteResult",
    "open_store",
]
