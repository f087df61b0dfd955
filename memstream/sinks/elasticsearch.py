"""Elasticsearch 8 store: a versioned index behind an alias, external versions on every write.

The alias (``index_prefix``) is what readers and writers use; the concrete index is
``{prefix}-v{n}``. A rebuild creates the next version and swaps the alias atomically.

One file for the whole backend, as every backend has (the store interface is one
contract; its contract tests run against each file).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError

from memstream.schemas.common import utcnow
from memstream.schemas.memory import MemoryNode
from memstream.sinks.base import (
    Channels,
    Hit,
    MemoryFilter,
    MemoryStore,
    StoreQueryError,
    StoreVersion,
    StoreWriteError,
    VersionState,
    WriteResult,
    check_drop,
    check_exists,
    check_mark,
)
from memstream.sinks.text import query_terms

log = logging.getLogger(__name__)


#: Fields added with the sparse channel; put on older indices when a store opens.
_RECALL_FIELDS: dict[str, Any] = {
    "context": {"type": "text"},
    "sparse": {"type": "rank_features"},
}
#: What searches never need back: the dense vector and the sparse terms.
_HEAVY = ["vector", "sparse"]


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
            **_RECALL_FIELDS,
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
    doc = node.model_dump(mode="json", exclude={"vector", "sparse"})
    if node.sparse:
        doc["sparse"] = dict(node.sparse)
    if node.vector is not None:
        doc["vector"] = [float(x) for x in node.vector]
    return doc


class ElasticsearchStore(MemoryStore):
    """``version=None`` reads and writes through the alias (the live version); a number pins
    the concrete index ``{prefix}-v{n}`` (what a rebuild writes). Version metadata lives in
    a small catalog index; the alias alone decides which version is live."""

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
        version: int | None = None,
    ) -> None:
        self.alias = prefix
        self.dimensions = dimensions
        self.pinned_version = version
        self._url = url
        self._api_key = api_key
        self._request_timeout = request_timeout
        self._refresh_on_write = refresh_on_write
        self._client = AsyncElasticsearch(url, api_key=api_key, request_timeout=request_timeout)
        self._target = prefix if version is None else self.index_name(version)
        self._catalog = f"{prefix}-catalog"

    def index_name(self, version: int) -> str:
        return f"{self.alias}-v{version}"

    async def _create_index(self, version: int, dimensions: int) -> None:
        await self._client.indices.create(
            index=self.index_name(version),
            settings={"number_of_shards": 1, "number_of_replicas": 0},
            mappings=index_mappings(dimensions),
        )

    async def _catalog_put(self, version: int, **fields: Any) -> None:
        await self._client.update(
            index=self._catalog,
            id=str(version),
            doc={"version": version, **fields},
            doc_as_upsert=True,
            refresh="wait_for",
        )

    async def _live_indices(self) -> list[str]:
        try:
            found = await self._client.indices.get_alias(name=self.alias)
        except NotFoundError:
            return []
        return sorted(found.body)

    async def open(self) -> None:
        if not await self._client.indices.exists(index=self._catalog):
            try:
                await self._client.indices.create(
                    index=self._catalog,
                    settings={"number_of_shards": 1, "number_of_replicas": 0},
                    mappings={
                        "properties": {
                            "version": {"type": "integer"},
                            "state": {"type": "keyword"},
                            "source": {"type": "keyword"},
                            "embedding_model": {"type": "keyword"},
                            "dimensions": {"type": "integer"},
                            "created_at": {"type": "date"},
                            "switched_at": {"type": "date"},
                        }
                    },
                )
            except BadRequestError as exc:  # another process created it first
                if "already_exists" not in str(exc):
                    raise
        if self.pinned_version is not None:
            exists = await self._client.indices.exists(index=self._target)
            check_exists(self.pinned_version, VersionState.retired if exists else None)
            return
        live = await self._live_indices()
        if not live:
            index = self.index_name(1)
            if not await self._client.indices.exists(index=index):
                await self._create_index(1, self.dimensions)
            await self._client.indices.update_aliases(
                actions=[{"add": {"index": index, "alias": self.alias, "is_write_index": True}}]
            )
            log.info("created index %s behind alias %s", index, self.alias)
            live = [index]
        # Indices made before the sparse channel: add its fields (adding is always allowed).
        await self._client.indices.put_mapping(index=self.alias, properties=_RECALL_FIELDS)
        version = _version_of(live[0], self.alias)
        if version is not None and not await self._client.exists(
            index=self._catalog, id=str(version)
        ):
            await self._catalog_put(
                version,
                state=VersionState.live.value,
                source="initial",
                dimensions=self.dimensions,
                created_at=utcnow().isoformat(),
            )

    async def close(self) -> None:
        await self._client.close()

    # -- versions ----------------------------------------------------------------------------
    async def _catalog_docs(self) -> dict[int, dict[str, Any]]:
        await self._client.indices.refresh(index=self._catalog)
        response = await self._client.search(
            index=self._catalog, query={"match_all": {}}, size=10_000
        )
        return {int(h["_source"]["version"]): h["_source"] for h in response["hits"]["hits"]}

    async def versions(self) -> list[StoreVersion]:
        docs = await self._catalog_docs()
        live = {_version_of(i, self.alias) for i in await self._live_indices()}
        out = []
        for version in sorted(docs):
            doc = docs[version]
            index = self.index_name(version)
            if doc.get("state") == VersionState.dropped.value:
                continue
            if not await self._client.indices.exists(index=index):
                continue
            await self._client.indices.refresh(index=index)
            count = (await self._client.count(index=index))["count"]
            state = VersionState.live if version in live else VersionState(doc["state"])
            if state is VersionState.live and version not in live:
                state = VersionState.retired
            out.append(
                StoreVersion(
                    version=version,
                    state=state,
                    source=str(doc.get("source", "")),
                    embedding_model=doc.get("embedding_model"),
                    dimensions=doc.get("dimensions"),
                    created_at=_date(doc["created_at"]) or utcnow(),
                    switched_at=_date(doc.get("switched_at")),
                    memories=int(count),
                )
            )
        return out

    async def create_version(
        self, source: str, *, embedding_model: str | None, dimensions: int | None
    ) -> int:
        docs = await self._catalog_docs()
        existing = await self._client.indices.get(index=f"{self.alias}-v*")
        numbers = [v for v in (_version_of(i, self.alias) for i in existing.body) if v]
        version = max([0, *docs, *numbers]) + 1
        dims = dimensions or self.dimensions
        await self._create_index(version, dims)
        await self._catalog_put(
            version,
            state=VersionState.building.value,
            source=source,
            embedding_model=embedding_model,
            dimensions=dims,
            created_at=utcnow().isoformat(),
        )
        return version

    async def switch_to(self, version: int) -> int | None:
        index = self.index_name(version)
        exists = await self._client.indices.exists(index=index)
        check_exists(version, VersionState.retired if exists else None)
        live = await self._live_indices()
        if live == [index]:
            return version
        # One update_aliases call: Elasticsearch applies the removes and the add atomically.
        actions: list[dict[str, Any]] = [
            {"remove": {"index": i, "alias": self.alias}} for i in live
        ]
        actions.append({"add": {"index": index, "alias": self.alias, "is_write_index": True}})
        await self._client.indices.update_aliases(actions=actions)
        now = utcnow().isoformat()
        previous = [v for v in (_version_of(i, self.alias) for i in live) if v is not None]
        for old in previous:
            await self._catalog_put(old, state=VersionState.retired.value)
        await self._catalog_put(version, state=VersionState.live.value, switched_at=now)
        return previous[0] if previous else None

    async def mark_version(self, version: int, state: VersionState) -> None:
        check_mark(state)
        if self.index_name(version) in await self._live_indices():
            return
        await self._catalog_put(version, state=state.value)

    async def drop_version(self, version: int) -> None:
        index = self.index_name(version)
        state: VersionState | None = None
        if index in await self._live_indices():
            state = VersionState.live
        elif await self._client.indices.exists(index=index):
            state = VersionState.retired  # kept, not live: a building one is droppable too
        check_drop(version, state)
        await self._client.indices.delete(index=index)
        await self._catalog_put(version, state=VersionState.dropped.value)

    async def purge(self) -> None:
        """Expunge deleted documents from the segments of every version (a delete only marks
        a document; its source stays on disk until its segment is merged)."""
        try:
            await self._client.indices.forcemerge(
                index=f"{self.alias}-v*", only_expunge_deletes=True
            )
        except ApiError as exc:
            log.warning(
                "force-merge of %s-v* failed (deleted documents stay on disk until "
                "Elasticsearch merges their segments): %s",
                self.alias,
                exc,
            )

    def at_version(self, version: int) -> ElasticsearchStore:
        return ElasticsearchStore(
            self._url,
            dimensions=self.dimensions,
            prefix=self.alias,
            api_key=self._api_key,
            request_timeout=self._request_timeout,
            refresh_on_write=self._refresh_on_write,
            version=version,
        )

    async def upsert(self, nodes: Sequence[MemoryNode]) -> WriteResult:
        if not nodes:
            return WriteResult()
        operations: list[dict[str, Any]] = []
        for node in nodes:
            operations.append(
                {
                    "index": {
                        "_index": self._target,
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
            raise StoreWriteError(f"{len(failures)} writes failed: {failures[:3]}")
        return WriteResult(applied, stale)

    async def delete(
        self, owner_id: str, user_id: str, memory_ids: Sequence[str] | None = None
    ) -> list[str]:
        if memory_ids is not None:
            if not memory_ids:
                return []
            # A real-time mget sees unrefreshed writes (a search would not) and tells whose
            # memory each id is.
            found_docs = await self._client.mget(
                index=self._target, ids=list(memory_ids), source=["owner_id", "user_id"]
            )
            ids = [
                d["_id"]
                for d in found_docs["docs"]
                if d.get("found")
                and d["_source"].get("owner_id") == owner_id
                and d["_source"].get("user_id") == user_id
            ]
            return await self._bulk_delete(ids)
        await self._client.indices.refresh(index=self._target)
        found: list[str] = []
        clauses = [{"term": {"owner_id": owner_id}}, {"term": {"user_id": user_id}}]
        while True:  # ids in pages, then a bulk delete per page
            response = await self._client.search(
                index=self._target, query={"bool": {"filter": clauses}}, size=1000, source=False
            )
            hits = [h["_id"] for h in response["hits"]["hits"]]
            if not hits:
                break
            deleted = await self._bulk_delete(hits)
            if not deleted:
                raise StoreWriteError(
                    f"could not delete {len(hits)} memories of {owner_id}/{user_id}"
                )
            found.extend(deleted)
        return found

    async def _bulk_delete(self, ids: list[str]) -> list[str]:
        if not ids:
            return []
        response = await self._client.bulk(
            operations=[{"delete": {"_index": self._target, "_id": i}} for i in ids],
            refresh="wait_for",
        )
        return [
            i
            for i, item in zip(ids, response["items"], strict=True)
            if item["delete"].get("status") == 200
        ]

    async def get(self, owner_id: str, user_id: str, memory_id: str) -> MemoryNode | None:
        try:
            found = await self._client.get(index=self._target, id=memory_id)
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
            index=self._target,
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
        response = await self._client.count(index=self._target, query={"bool": {"filter": clauses}})
        return int(response["count"])

    async def latest_embedding_model(self) -> str | None:
        response = await self._client.search(
            index=self._target,
            query={"exists": {"field": "embedding_model"}},
            sort=[{"recorded_at": "desc"}],
            source_includes=["embedding_model"],
            size=1,
        )
        hits = response["hits"]["hits"]
        return str(hits[0]["_source"]["embedding_model"]) if hits else None

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
        try:
            response = await self._client.search(
                index=self._target, **_knn_body(owner_id, user_id, vector, k, flt, vectors)
            )
        except BadRequestError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            if not _is_dims_error(body.get("error")):
                raise
            self._skip_vectors(str(exc))
            return []
        return _vector_hits(response)

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
        body = _text_body(owner_id, user_id, text, k, flt, vectors)
        if body is None:
            return []
        response = await self._client.search(index=self._target, **body)
        return _text_hits(response)

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
        """Every channel in one ``_msearch`` round trip."""
        bodies: dict[str, dict[str, Any] | None] = {
            "dense": None
            if vector is None
            else _knn_body(owner_id, user_id, vector, k, flt, vectors),
            "text": None if text is None else _text_body(owner_id, user_id, text, k, flt, vectors),
            "sparse": _sparse_body(owner_id, user_id, terms, k, flt, vectors) if terms else None,
        }
        asked = [(name, body) for name, body in bodies.items() if body is not None]
        if not asked:
            return Channels([], [], [])
        response = await self._client.msearch(
            index=self._target, searches=[part for _, body in asked for part in ({}, body)]
        )
        found: dict[str, list[Hit]] = {"dense": [], "text": [], "sparse": []}
        for (name, _), answer in zip(asked, response["responses"], strict=True):
            error = answer.get("error")
            if error is None:
                found[name] = _vector_hits(answer) if name == "dense" else _text_hits(answer)
            elif name == "dense" and _is_dims_error(error):
                self._skip_vectors(str(error))
            else:
                raise StoreQueryError(f"{name} search failed on {self._target}: {error}")
        return Channels(found["dense"], found["text"], found["sparse"])

    def _skip_vectors(self, detail: str) -> None:
        # The live version was re-embedded at another size and this process still runs the
        # old embedder: vector recall is skipped (text recall still answers) until it is
        # restarted with the new one.
        log.warning("vector search skipped on %s: %s", self._target, detail)

    async def refresh(self) -> None:
        await self._client.indices.refresh(index=self._target)


def _knn_body(
    owner_id: str,
    user_id: str,
    vector: npt.NDArray[np.float32],
    k: int,
    flt: MemoryFilter,
    vectors: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "knn": {
            "field": "vector",
            "query_vector": np.asarray(vector, dtype=np.float32).tolist(),
            "k": k,
            "num_candidates": max(100, 2 * k),
            "filter": _filters(owner_id, user_id, flt),
        },
        "size": k,
    }
    if not vectors:
        body["_source"] = {"excludes": _HEAVY}
    return body


def _sparse_body(
    owner_id: str,
    user_id: str,
    terms: Mapping[int, float],
    k: int,
    flt: MemoryFilter,
    vectors: bool,
) -> dict[str, Any]:
    """The SPLADE dot product: one linear ``rank_feature`` clause per query term."""
    should = [
        {"rank_feature": {"field": f"sparse.{term}", "linear": {}, "boost": float(weight)}}
        for term, weight in terms.items()
    ]
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "should": should,
                "minimum_should_match": 1,
                "filter": _filters(owner_id, user_id, flt),
            }
        },
        "size": k,
    }
    if not vectors:
        body["_source"] = {"excludes": _HEAVY}
    return body


def _text_body(
    owner_id: str, user_id: str, text: str, k: int, flt: MemoryFilter, vectors: bool
) -> dict[str, Any] | None:
    terms = query_terms(text)
    if not terms:
        return None
    body: dict[str, Any] = {
        "query": {
            "bool": {
                # Content and the turn it answered, scored as one field (as SQLite indexes
                # them); older documents without a context still match on content.
                "must": [
                    {
                        "combined_fields": {
                            "query": " ".join(terms),
                            "fields": ["content", "context"],
                            "operator": "or",
                        }
                    }
                ],
                "filter": _filters(owner_id, user_id, flt),
            }
        },
        "size": k,
    }
    if not vectors:
        body["_source"] = {"excludes": _HEAVY}
    return body


def _vector_hits(response: Any) -> list[Hit]:
    # ES reports cosine as (1 + cos) / 2; map it back to the cosine itself.
    return [
        Hit(MemoryNode.model_validate(h["_source"]), 2.0 * float(h["_score"]) - 1.0)
        for h in response["hits"]["hits"]
    ]


def _text_hits(response: Any) -> list[Hit]:
    return [
        Hit(MemoryNode.model_validate(h["_source"]), float(h["_score"]))
        for h in response["hits"]["hits"]
    ]


def _is_dims_error(error: Any) -> bool:
    """Is this search error (an ES error object) a query vector of another size than the
    index's? Judged by the causes' type and reason, not by a word anywhere in the text."""
    if not isinstance(error, dict):
        return False
    causes: list[Any] = [error, *error.get("root_cause", [])]
    while causes:
        cause = causes.pop()
        if not isinstance(cause, dict):
            continue
        if cause.get("type") in _DIMS_ERROR_TYPES and _DIMS_REASON in str(cause.get("reason", "")):
            return True
        causes.append(cause.get("caused_by"))
    return False


#: What Elasticsearch 8 says when a knn query vector's size is not the field's.
_DIMS_ERROR_TYPES = frozenset({"illegal_argument_exception", "query_shard_exception"})
_DIMS_REASON = "different number of dimensions"


def _version_of(index: str, alias: str) -> int | None:
    match = re.fullmatch(re.escape(alias) + r"-v(\d+)", index)
    return int(match.group(1)) if match else None


def _date(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
