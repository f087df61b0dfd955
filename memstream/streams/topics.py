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


async def create_topics(kafka: KafkaSettings) -> list[str]:
    """Create missing topics; existing ones are left as they are. Returns the created names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
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
