"""The partition a key belongs to: Kafka's default (murmur2) partitioner, as Java clients use."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """Same result as the Java client's and aiokafka's default partitioner for a keyed record."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)
