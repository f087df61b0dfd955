"""One contract, both stores: SQLite on a temp file, Elasticsearch on noida-db."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memstream.embedder import Embedder
from memstream.schemas import MemoryNode, MemoryType, StoreStatus, memory_id
from memstream.sinks.base import Hit, MemoryFilter, MemoryStore

T0 = datetime(2024, 7, 10, 9, 30, tzinfo=UTC)


def node(
    embedder: Embedder,
    text: str,
    *,
    owner: str = "app",
    user: str = "alice",
    n: int = 0,
    version: int = 1,
    status: StoreStatus = StoreStatus.valid,
    mtype: MemoryType = MemoryType.observation,
) -> MemoryNode:
    when = T0 + timedelta(hours=n)
    return MemoryNode(
        memory_id=memory_id(owner, user, [f"m{n}"], 0),
        owner_id=owner,
        user_id=user,
        memory_type=mtype,
        content=text,
        store_status=status,
        message_time=when,
        valid_from=when,
        recorded_at=when,
        source_message_ids=[f"m{n}"],
        version=version,
        vector=embedder.embed_one(text).tolist(),
        embedding_model=embedder.model_id,
    )


async def test_roundtrip_keeps_every_field(store: MemoryStore, embedder: Embedder) -> None:
    original = node(embedder, "I work at Alibaba as an engineer")
    result = await store.upsert([original])
    assert result.applied == [original.memory_id] and result.stale == []
    got = await store.get("app", "alice", original.memory_id)
    assert got is not None
    assert got.model_dump(exclude={"vector"}) == original.model_dump(exclude={"vector"})
    assert got.vector is not None and original.vector is not None
    assert np.allclose(got.vector, original.vector, atol=1e-6)
    assert await store.get("app", "bob", original.memory_id) is None, "scoped to its user"
    assert await store.get("app", "alice", "no-such-id") is None


async def test_writes_are_version_gated(store: MemoryStore, embedder: Embedder) -> None:
    v1 = node(embedder, "I live in Hangzhou", version=1)
    v2 = v1.model_copy(update={"content": "I live in Beijing", "version": 2})
    assert (await store.upsert([v2])).applied == [v1.memory_id]
    replayed = await store.upsert([v1, v2])
    assert replayed.applied == [] and sorted(replayed.stale) == [v1.memory_id] * 2
    got = await store.get("app", "alice", v1.memory_id)
    assert got is not None and got.content == "I live in Beijing" and got.version == 2
    assert await store.count("app", "alice") == 1


async def test_list_filters_orders_and_pages(store: MemoryStore, embedder: Embedder) -> None:
    nodes = [node(embedder, f"fact number {i}", n=i) for i in range(5)]
    nodes.append(node(embedder, "old fact", n=10, status=StoreStatus.expired))
    nodes.append(node(embedder, "The job of alice: engineer", n=11, mtype=MemoryType.insight))
    nodes.append(node(embedder, "someone else's fact", user="bob", n=12))
    await store.upsert(nodes)
    await store.refresh()

    valid = await store.list_memories("app", "alice")
    assert [m.content for m in valid] == [
        "The job of alice: engineer",
        *[f"fact number {i}" for i in range(4, -1, -1)],
    ]
    page = await store.list_memories("app", "alice", limit=2, offset=2)
    assert [m.content for m in page] == ["fact number 3", "fact number 2"]
    expired = await store.list_memories(
        "app", "alice", MemoryFilter(statuses=(StoreStatus.expired,))
    )
    assert [m.content for m in expired] == ["old fact"]
    insights = await store.list_memories("app", "alice", MemoryFilter(types=(MemoryType.insight,)))
    assert [m.memory_type for m in insights] == [MemoryType.insight]

    assert await store.count("app", "alice") == 7
    assert await store.count("app", "alice", MemoryFilter()) == 6
    assert await store.count("app") == 8
    assert await store.count() >= 8


async def test_vector_search_ranks_and_scopes(store: MemoryStore, embedder: Embedder) -> None:
    texts = [
        "I play tennis every weekend",
        "My daughter started school in September",
        "I am allergic to peanuts",
        "I switched from coffee to green tea",
    ]
    await store.upsert([node(embedder, t, n=i) for i, t in enumerate(texts)])
    await store.upsert([node(embedder, "I love tennis too", user="bob", n=9)])
    await store.upsert(
        [node(embedder, "I used to play tennis in college", n=20, status=StoreStatus.expired)]
    )
    await store.refresh()
    hits = await store.search_vector("app", "alice", embedder.embed_one("what sport do I play?"), 3)
    assert len(hits) == 3
    assert hits[0].node.content == "I play tennis every weekend"
    assert hits[0].score > hits[1].score >= hits[2].score
    assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0
    assert all(h.node.user_id == "alice" and h.node.store_status == "valid" for h in hits)


async def test_text_search_bm25_english_and_chinese(store: MemoryStore, embedder: Embedder) -> None:
    await store.upsert(
        [
            node(embedder, "I adopted a golden retriever named Max", n=0),
            node(embedder, "My favourite food is spicy hotpot", n=1),
            node(embedder, "我在杭州的阿里巴巴工作", n=2),
            node(embedder, "Max the dog belongs to bob", user="bob", n=3),
        ]
    )
    await store.refresh()
    hits = await store.search_text("app", "alice", "What is my dog Max like?", 5)
    assert hits and hits[0].node.content == "I adopted a golden retriever named Max"
    assert all(h.node.user_id == "alice" for h in hits)
    assert all(h.score > 0 for h in hits)
    zh = await store.search_text("app", "alice", "阿里巴巴", 5)
    assert [h.node.content for h in zh] == ["我在杭州的阿里巴巴工作"]


async def test_hybrid_search_is_both_channels_and_can_leave_vectors_out(
    store: MemoryStore, embedder: Embedder
) -> None:
    texts = ["I play tennis every weekend", "Tennis elbow again", "I am allergic to peanuts"]
    await store.upsert([node(embedder, t, n=i) for i, t in enumerate(texts)])
    await store.upsert([node(embedder, "I love tennis too", user="bob", n=9)])
    await store.refresh()
    query = "do I play tennis?"
    vector = embedder.embed_one(query)
    dense = await store.search_vector("app", "alice", vector, 5)
    sparse = await store.search_text("app", "alice", query, 5)
    assert dense[0].node.vector is not None and sparse[0].node.vector is not None
    both = await store.search_hybrid("app", "alice", vector, query, 5, vectors=False)

    def ids_scores(hits: list[Hit]) -> list[tuple[str, float]]:
        return [(h.node.memory_id, round(h.score, 5)) for h in hits]

    assert ids_scores(both[0]) == ids_scores(dense) and ids_scores(both[1]) == ids_scores(sparse)
    assert all(h.node.vector is None for h in [*both[0], *both[1]])
    assert both[0][0].node.model_dump(exclude={"vector"}) == dense[0].node.model_dump(
        exclude={"vector"}
    )
    only_text = await store.search_hybrid("app", "alice", None, query, 5)
    assert only_text[0] == [] and ids_scores(only_text[1]) == ids_scores(sparse)
    only_vector = await store.search_hybrid("app", "alice", vector, None, 5)
    assert ids_scores(only_vector[0]) == ids_scores(dense) and only_vector[1] == []
    # A query vector of another size (the store was re-embedded, this process was not):
    # vector recall finds nothing, text recall still answers.
    other_size = np.ones(48, dtype=np.float32) / np.sqrt(48)
    mismatched = await store.search_hybrid("app", "alice", other_size, query, 5)
    assert mismatched[0] == [] and ids_scores(mismatched[1]) == ids_scores(sparse)


async def test_replayed_batches_never_duplicate(store: MemoryStore, embedder: Embedder) -> None:
    batch = [node(embedder, f"memory {i}", n=i) for i in range(20)]
    first = await store.upsert(batch)
    second = await store.upsert(batch)
    assert len(first.applied) == 20 and len(second.stale) == 20
    await store.refresh()
    assert await store.count("app", "alice") == 20


@pytest.mark.parametrize("query", ["", "   ", "!!!"])
async def test_text_search_without_terms_is_empty(
    store: MemoryStore, embedder: Embedder, query: str
) -> None:
    await store.upsert([node(embedder, "something")])
    await store.refresh()
    assert await store.search_text("app", "alice", query, 5) == []


async def test_delete_some_then_all_of_one_user(store: MemoryStore, embedder: Embedder) -> None:
    alice = [node(embedder, f"alice fact {i}", n=i) for i in range(4)]
    bob = node(embedder, "bob fact", user="bob", n=9)
    await store.upsert([*alice, bob])
    await store.refresh()
    gone = await store.delete("app", "alice", [alice[0].memory_id, "no-such-id", bob.memory_id])
    assert gone == [alice[0].memory_id]  # another user's id is not touched
    await store.refresh()
    assert await store.get("app", "alice", alice[0].memory_id) is None
    assert await store.search_text("app", "alice", "fact", 10) != []
    assert await store.delete("app", "alice", []) == []
    everything = await store.delete("app", "alice")
    assert sorted(everything) == sorted(n.memory_id for n in alice[1:])
    await store.refresh()
    assert await store.count("app", "alice") == 0
    assert await store.search_text("app", "alice", "fact", 10) == []
    assert await store.search_vector("app", "alice", embedder.embed_one("fact"), 10) == []
    assert await store.count("app", "bob") == 1


async def test_versions_build_switch_and_drop(store: MemoryStore, embedder: Embedder) -> None:
    """A rebuild's life cycle: the live version serves while a new one is written, one
    switch moves every reader and writer over, and the old one stays until dropped."""
    from memstream.sinks.base import StoreVersionError, VersionState

    old = node(embedder, "I live in Hangzhou", n=1)
    await store.upsert([old])
    await store.refresh()
    [initial] = await store.versions()
    assert (initial.version, initial.state, initial.memories) == (1, VersionState.live, 1)

    new_version = await store.create_version("events", embedding_model="x", dimensions=384)
    assert new_version == 2
    async with store.at_version(new_version) as building:
        fresh = node(embedder, "I live in Beijing", n=2)
        assert (await building.upsert([fresh])).applied == [fresh.memory_id]
        await building.refresh()
        assert await building.count() == 1
        # Readers of the live version do not see the version being built.
        assert [n.content for n in await store.list_memories("app", "alice")] == [old.content]
        states = {v.version: v.state for v in await store.versions()}
        assert states == {1: VersionState.live, 2: VersionState.building}

        assert await store.switch_to(new_version) == 1
        assert [n.content for n in await store.list_memories("app", "alice")] == [fresh.content]
        later = node(embedder, "I moved to Shanghai", n=3)
        await store.upsert([later])  # writers follow the switch too
        await store.refresh()
        await building.refresh()
        assert await building.count() == 2
    listed = {v.version: (v.state, v.memories) for v in await store.versions()}
    assert listed == {1: (VersionState.retired, 1), 2: (VersionState.live, 2)}

    with pytest.raises(StoreVersionError, match="live"):
        await store.drop_version(2)
    with pytest.raises(StoreVersionError, match="does not exist"):
        await store.drop_version(7)
    await store.drop_version(1)
    assert [v.version for v in await store.versions()] == [2]
    assert await store.create_version("messages", embedding_model=None, dimensions=None) == 3
    assert await store.count("app", "alice") == 2
    # A dropped number is never given again: a rebuild's events carry it as their generation.
    await store.drop_version(3)
    assert await store.create_version("messages", embedding_model=None, dimensions=None) == 4
    with pytest.raises(StoreVersionError, match="does not exist"):
        await store.drop_version(3)


def indexed(embedder: Embedder, text: str, *, n: int, context: str | None = None) -> MemoryNode:
    """A memory as the worker writes it: vector, and sparse terms of content + context."""
    memory = node(embedder, text, n=n).model_copy(update={"context": context})
    embedder.index([memory], force=True)
    return memory


async def test_sparse_channel_scores_the_dot_product(
    store: MemoryStore, sparse_embedder: Embedder
) -> None:
    """The learned sparse channel: the store's score is the SPLADE dot product, the
    answered turn is searchable, and sparse terms never come back in search results."""
    embedder = sparse_embedder
    assert embedder.sparse is not None
    memories = [
        indexed(embedder, "Went hiking with my sister", n=0, context="How was the mountain trip?"),
        indexed(embedder, "I am allergic to peanuts", n=1),
        indexed(embedder, "Tennis every Saturday morning", n=2),
    ]
    await store.upsert(memories)
    await store.refresh()
    query = "which trails did she hike with family?"
    terms = embedder.sparse.encode_query(query)
    found = await store.search_hybrid("app", "alice", None, None, 5, terms=terms, vectors=False)
    assert found.dense == [] and found.text == []
    assert found.sparse[0].node.memory_id == memories[0].memory_id
    expected = sum(w * (memories[0].sparse or {}).get(str(t), 0.0) for t, w in terms.items())
    # Stored as float32 (SQLite) or a Lucene feature (Elasticsearch keeps 9 bits of
    # mantissa: within 0.4 %).
    assert found.sparse[0].score == pytest.approx(expected, rel=5e-3)
    assert all(h.node.sparse is None and h.node.vector is None for h in found.sparse)
    assert all(h.score > 0 for h in found.sparse), "no shared term, no hit"
    # Context is indexed for keyword recall too, and kept on the memory.
    context_hit = await store.search_hybrid("app", "alice", None, "the mountain trip", 5)
    assert context_hit.text[0].node.memory_id == memories[0].memory_id
    got = await store.get("app", "alice", memories[0].memory_id)
    assert got is not None and got.context == "How was the mountain trip?"
    assert got.sparse is not None and memories[0].sparse is not None
    assert got.sparse.keys() == memories[0].sparse.keys()
    assert all(abs(got.sparse[t] - w) <= 5e-3 * w for t, w in memories[0].sparse.items())


async def test_a_store_refuses_another_embedding_model(
    store: MemoryStore, embedder: Embedder
) -> None:
    from memstream.sinks import StoreModelError

    await store.check_embedder("any-model")  # empty: nothing to mix with
    await store.upsert([node(embedder, "I live in Hangzhou")])
    await store.refresh()
    await store.check_embedder(embedder.model_id)
    with pytest.raises(StoreModelError, match="rebuild --from events --reembed"):
        await store.check_embedder("all-MiniLM-L6-v2-onnx-int8")
