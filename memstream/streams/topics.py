"""Topic definitions and idempotent creation (``memstream topics create``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from memstream.config import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]
    purpose: str


def topic_specs(kafka: KafkaSettings) -> list[TopicSpec]:
    """All memstream topics. Every one is keyed by ``owner_id/user_id`` and co-partitioned."""

    def spec(name: str, retention_ms: int, purpose: str, **extra: str) -> TopicSpec:
        config = {"retention.ms": str(retention_ms), "cleanup.policy": "delete", **extra}
        return TopicSpec(name, kafka.partitions, kafka.replication_factor, config, purpose)

    return [
        spec(kafka.messages_topic, kafka.messages_retention_ms, "raw chat messages (input log)"),
        spec(kafka.jobs_topic, kafka.jobs_retention_ms, "consolidation jobs per user"),
        spec(kafka.memories_topic, kafka.memories_retention_ms, "memory events (replayable log)"),
        spec(kafka.dlq_topic, kafka.dlq_retention_ms, "dead letters with reasons"),
    ]


class TopicError(Exception):
    """A topic the project needs is missing or not as its spec says."""


class TopicMissing(TopicError):
    """A topic does not exist (``memstream topics create`` makes them)."""


class TopicMismatch(TopicError):
    """An existing topic does not have the partitions the settings say."""


async def create_topics(kafka: KafkaSettings, *, verify: bool = True) -> list[str]:
    """Create missing topics and check existing ones. Returns the created names.

    Co-partitioning is an invariant (a user's window lives on the partition murmur2 gives its
    key), so an existing topic with another partition count is an error, not a warning.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if verify:
            await _verify_partitions(admin, kafka, existing)
        wanted = [s for s in topic_specs(kafka) if s.name not in existing]
        created: list[str] = []
        for spec in wanted:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=spec.replication_factor,
                            topic_configs=spec.config,
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        await admin.close()


async def check_topics(kafka: KafkaSettings) -> None:
    """Every topic exists with the settings' partition count; raises :class:`TopicMissing`
    or :class:`TopicMismatch` naming what is wrong (lists topics: creates none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s.name for s in topic_specs(kafka) if s.name not in existing]
        if missing:
            raise TopicMissing(
                f"topics missing: {', '.join(missing)} (did the broker restart with an "
                f"in-memory log?); `memstream topics create` or a worker's start makes them"
            )
        await _verify_partitions(admin, kafka, existing)
    finally:
        await admin.close()


async def _verify_partitions(
    admin: AIOKafkaAdminClient, kafka: KafkaSettings, existing: set[str]
) -> None:
    names = [s.name for s in topic_specs(kafka) if s.name in existing]
    if not names:
        return
    wrong = []
    for topic in await admin.describe_topics(names):
        count = len(topic.get("partitions") or [])
        if count and count != kafka.partitions:
            wrong.append(f"{topic['topic']} has {count}")
    if wrong:
        raise TopicMismatch(
            f"topics exist with another partition count ({', '.join(wrong)}; settings say "
            f"{kafka.partitions}): set MEMSTREAM_KAFKA__PARTITIONS to match, or use new topics"
        )
