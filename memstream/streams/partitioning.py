"""The partition a key belongs to: Kafka's default (murmur2) partitioner, as Java clients use."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """Same result as the Java client's and aiokafka's default partitioner for a keyed record.

    Cached: aiokafka's murmur2 is pure Python (~3% of ingest), and a user's key recurs with
    every message they send."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)
