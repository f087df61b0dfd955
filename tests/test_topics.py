"""Topic creation is idempotent and refuses a partition count that breaks co-partitioning."""

from __future__ import annotations

from pathlib import Path

import pytest

from memstream.streams.topics import TopicMismatch, create_topics, topic_specs
from tests.support.pipeline import pipeline_env, settings_from
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers


async def test_create_is_idempotent_and_checks_partitions(tmp_path: Path, tansu: Tansu) -> None:
    settings = settings_from(
        pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite", partitions=3)
    )
    names = [s.name for s in topic_specs(settings.kafka)]
    assert sorted(await create_topics(settings.kafka)) == sorted(names)
    assert await create_topics(settings.kafka) == []
    other = settings.kafka.model_copy(update={"partitions": 5})
    with pytest.raises(TopicMismatch, match="has 3"):
        await create_topics(other)
