"""Benchmarks run and report their keys (figures are printed, never asserted on time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memstream.config import Settings
from memstream.evaluation.bench import bench_ingest, bench_rebuild, bench_retrieval
from memstream.metrics import quantile

pytestmark = pytest.mark.servers


def test_quantile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.5) == 50 and quantile(values, 0.95) == 95
    assert quantile(values, 0.99) == 99 and quantile([7.0], 0.95) == 7.0


async def test_bench_retrieval_reports(tmp_path: Path) -> None:
    report = await bench_retrieval(
        Settings.load(data_dir=tmp_path), users=5, per_user=5, clients=2, seconds=1, top_k=5
    )
    assert {"p50_ms", "p95_ms", "p99_ms", "rps", "service_rss_mb"} <= set(report)
    assert report["requests"] > 0 and report["errors"] == 0 and report["empty_results"] == 0
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    assert report["queries_per_embed_call"] >= 1.0  # read from the service's /metrics


async def test_bench_ingest_reports(tmp_path: Path) -> None:
    report = await bench_ingest(
        Settings.load(data_dir=tmp_path), messages=300, users=10, partitions=2
    )
    assert {"ingest_msgs_per_s", "bare_faust_msgs_per_s", "ratio", "worker_rss_mb"} <= set(report)
    assert report["ingest_msgs_per_s"] > 0 and report["bare_faust_msgs_per_s"] > 0
    assert report["bare_worker_consumer_msgs_per_s"] > 0  # its own group: read it all again
    assert report["worker_rss_mb"] > 0


async def test_bench_rebuild_reports_a_correct_rebuild(tmp_path: Path) -> None:
    report = await bench_rebuild(Settings.load(data_dir=tmp_path), users=6, per_user=20)
    # 6 users x 20 memories, one in 20 deleted, user 0 forgotten: 5 x 19 remain.
    assert report["expected_memories"] == 95 and report["correct"], report
    assert report["memories_per_s"] > 0 and report["events"] == 6 * 21 + 1
