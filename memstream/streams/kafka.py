"""Kafka clients in memstream never create a topic by using it.

aiokafka asks every metadata request to auto-create the topics it names, and a broker that
allows it (tansu always does) then creates a missing topic with *its* default partition
count: after a restart of an in-memory broker, the first producer to send made
``memstream.messages`` with 4 partitions where the settings say 8, breaking the
co-partitioning every user's window relies on. Here the flag is off for every client in the
process (producers, readers, the worker's Faust clients): a missing topic is an error that
says so (``UnknownTopicOrPartitionError``), and only ``memstream topics create`` (or a
worker's start) creates topics, with their specs.
"""

from __future__ import annotations

from typing import Any

from aiokafka.protocol.metadata import MetadataRequest

_PATCHED = "_memstream_no_auto_create"


def no_topic_auto_creation() -> None:
    """Make ``allow_auto_topic_creation`` default to False (idempotent)."""
    if getattr(MetadataRequest, _PATCHED, False):
        return
    original = MetadataRequest.__init__

    def init(
        self: Any, topics: list[str] | None = None, allow_auto_topic_creation: bool = False
    ) -> None:
        original(self, topics, allow_auto_topic_creation)

    MetadataRequest.__init__ = init
    setattr(MetadataRequest, _PATCHED, True)
