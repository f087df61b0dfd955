"""Elasticsearch 8 store: a versioned index behind an alias, external versions on every write.

The alias (``index_prefix``) is what readers and writers use; the concrete index is
``{prefix}-v{n}``. A rebuild creates the next version and swaps the alias atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from elasticsearch import AsyncElasticsearch, NotFoundError

from memstream.schemas.memory import MemoryNode
from memstream.sinks.base import Hit, MemoryFilter, MemoryStore, WriteResult
from memstream.sinks.text import query_terms

log = logging.getLogger(__name__)


def index_mappings(dimensions: int) -> dict[str, Any]:
    """Strict mapping: keyword ids and enums, BM25 text, dates, and a cosine dense vector."""
    keyword = {"type": "keyword"}
    date = {"type": "date"}
    integer = {"type": "integer"}
    return {
        "dynamic": "strict",
        "properties": {
            "memory_id": keyword,
            "owner_id": keyword,
            "user_id": keyword,
            "memory_type": keyword,
            "content": {"type": "text"},
            "key": keyword,
            "value": {"type": "text"},
            "store_status": keyword,
            "obs_reflected": {"type": "boolean"},
            "obs_updated": {"type": "boolean"},
            "message_time": date,
            "valid_from": date,
            "valid_to": date,
            "recorded_at": date,
            "event_time": {
                "properties": {
                    f: integer for f in ("year", "month", "day", "hour", "week", "weekday")
                }
            },
            "source_message_ids": keyword,
            "source_text": {"type": "text", "index": False},
            "keywords": keyword,
            "language": keyword,
            "speaker": keyword,
            "version": {"type": "long"},
            "embedding_model": keyword,
            "vector": {
                "type": "dense_vector",
                "dims": dimensions,
                "index": True,
                "similarity": "cosine",
            },
        },
    }


def _filters(owner_id: str, user_id: str, flt: MemoryFilter) -> list[dict[str, Any]]:
    return [
        {"term": {"owner_id": owner_id}},
        {"term": {"user_id": user_id}},
        {"terms": {"memory_type": [t.value for t in flt.types]}},
        {"terms": {"store_status": [s.value for s in flt.statuses]}},
    ]


def _doc(node: MemoryNode) -> dict[str, Any]:
    doc = node.model_dump(mode="json", exclude={"vector"})
    if node.vector is not None:
        doc["vector"] = [float(x) for x in node.vector]
    return doc


class ElasticsearchStore(MemoryStore):
    backend = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        dimensions: int,
        prefix: str = "memstream-memories",
        api_key: str | None = None,
        request_timeout: float = 30.0,
        refresh_on_write: bool = False,
    ) -> None:
        self.alias = prefix
        self.dimensions = dimensions
        self._refresh_on_write = refresh_on_write
        self._client = AsyncElasticsearch(url, api_key=api_key, request_timeout=request_timeout)

    def index_name(self, version: int) -> str:
        return f"{self.alias}-v{version}"

    async def open(self) -> None:
        await self._client.indices.put_index_template(
            name=f"{self.alias}-template",
            index_patterns=[f"{self.alias}-v*"],
            template={
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": index_mappings(self.dimensions),
            },
            priority=100,
        )
        if not await self._client.indices.exists_alias(name=self.alias):
            index = self.index_name(1)
            if not await self._client.indices.exists(index=index):
                await self._client.indices.create(index=index)
            await self._client.indices.update_aliases(
                actions=[{"add": {"index": index, "alias": self.alias, "is_write_index": True}}]
            )
            log.info("created index %s behind alias %s", index, self.alias)

    async def close(self) -> None:
        await self._client.close()

    async def upsert(self, nodes: Sequence[MemoryNode]) -> WriteResult:
        if not nodes:
            return WriteResult()
        operations: list[dict[str, Any]] = []
        for node in nodes:
            operations.append(
                {
                    "index": {
                        "_index": self.alias,
                        "_id": node.memory_id,
                        "version": node.version,
                        "version_type": "external",
                    }
                }
            )
            operations.append(_doc(node))
        response = await self._client.bulk(
            operations=operations, refresh="wait_for" if self._refresh_on_write else False
        )
        applied: list[str] = []
        stale: list[str] = []
        failures: list[str] = []
        for node, item in zip(nodes, response["items"], strict=True):
            result = item["index"]
            status = result.get("status", 500)
            if status in (200, 201):
                applied.append(node.memory_id)
            elif status == 409:
                stale.append(node.memory_id)
            else:
                failures.append(f"{node.memory_id}: {result.get('error')}")
        if failures:
            raise RuntimeError(f"{len(failures)} writes failed: {failures[:3]}")
        return WriteResult(applied, stale)

    async def delete(
        self, owner_id: str, user_id: str, memory_ids: Sequence[str] | None = None
    ) -> list[str]:
        clauses: list[dict[str, Any]] = [
            {"term": {"owner_id": owner_id}},
            {"term": {"user_id": user_id}},
        ]
        if memory_ids is not None:
            if not memory_ids:
                return []
            clauses.append({"ids": {"values": list(memory_ids)}})
        found: list[str] = []
        while True:  # ids in pages, then a bulk delete per page
            response = await self._client.search(
                index=self.alias,
                query={"bool": {"filter": clauses}},
                size=1000,
                source=False,
            )
            hits = [h["_id"] for h in response["hits"]["hits"]]
            if not hits:
                break
            await self._client.bulk(
                operations=[{"delete": {"_index": self.alias, "_id": i}} for i in hits],
                refresh="wait_for",
            )
            found.extend(hits)
            if memory_ids is not None:
                break
        return found

    async def get(self, owner_id: str, user_id: str, memory_id: str) -> MemoryNode | None:
        try:
            found = await self._client.get(index=self.alias, id=memory_id)
        except NotFoundError:
            return None
        node = MemoryNode.model_validate(found["_source"])
        if node.owner_id != owner_id or node.user_id != user_id:
            return None
        return node

    async def list_memories(
        self,
        owner_id: str,
        user_id: str,
        flt: MemoryFilter = MemoryFilter(),
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> list[MemoryNode]:
        response = await self._client.search(
            index=self.alias,
            query={"bool": {"filter": _filters(owner_id, user_id, flt)}},
            sort=[{"message_time": "desc"}, {"memory_id": "asc"}],
            size=limit,
            from_=offset,
        )
        return [MemoryNode.model_validate(h["_source"]) for h in response["hits"]["hits"]]

    async def count(
        self,
        owner_id: str | None = None,
        user_id: str | None = None,
        flt: MemoryFilter | None = None,
    ) -> int:
        clauses: list[dict[str, Any]] = []
        if owner_id is not None:
            clauses.append({"term": {"owner_id": owner_id}})
        if user_id is not None:
            clauses.append({"term": {"user_id": user_id}})
        if flt is not None:
            clauses.append({"terms": {"memory_type": [t.value for t in flt.types]}})
            clauses.append({"terms": {"store_status": [s.value for s in flt.statuses]}})
        response = await self._client.count(index=self.alias, query={"bool": {"filter": clauses}})
        return int(response["count"])

    async def search_vector(
        self,
        owner_id: str,
        user_id: str,
        vector: npt.NDArray[np.float32],
        k: int,
        flt: MemoryFilter = MemoryFilter(),
    ) -> list[Hit]:
        response = await self._client.search(
            index=self.alias,
            knn={
                "field": "vector",
                "query_vector": np.asarray(vector, dtype=np.float32).tolist(),
                "k": k,
                "num_candidates": max(100, 2 * k),
                "filter": _filters(owner_id, user_id, flt),
            },
            size=k,
        )
        # ES reports cosine as (1 + cos) / 2; map it back to the cosine itself.
        return [
            Hit(MemoryNode.model_validate(h["_source"]), 2.0 * float(h["_score"]) - 1.0)
            for h in response["hits"]["hits"]
        ]

    async def search_text(
        self, owner_id: str, user_id: str, text: str, k: int, flt: MemoryFilter = MemoryFilter()
    ) -> list[Hit]:
        terms = query_terms(text)
        if not terms:
            return []
        response = await self._client.search(
            index=self.alias,
            query={
                "bool": {
                    "must": [{"match": {"content": {"query": " ".join(terms)}}}],
                    "filter": _filters(owner_id, user_id, flt),
                }
            },
            size=k,
        )
        return [
            Hit(MemoryNode.model_validate(h["_source"]), float(h["_score"]))
            for h in response["hits"]["hits"]
        ]

    async def refresh(self) -> None:
        await self._client.indices.refresh(index=self.alias)
