"""Prometheus metrics for the worker and the query service.

The worker's counters already live in ``WorkerStats`` (served as JSON on ``/stats/``); a
collector renders the same numbers in Prometheus' text format on ``/metrics``, so the two
views never disagree. The query service keeps its own registry (one per app instance).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (None when there are no values): a sample that was measured,
    never an interpolation between two."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5 - 1e-9)))
    return ordered[rank - 1]


_WORKER_COUNTERS = {
    "messages_in": "Records read from the messages topic.",
    "messages_windowed": "Valid messages added to a window.",
    "jobs_emitted": "Windows closed and put on the jobs topic.",
    "jobs_done": "Jobs finished.",
    "jobs_failed": "Jobs dead-lettered.",
    "memories_written": "Memory writes applied to the store.",
    "memory_events": "Memory events published.",
    "reflections_requested": "Reflection jobs requested by the timer.",
}


class WorkerCollector(Collector):
    """Reads a stats snapshot (``WorkerStats.as_dict``) at scrape time."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        s = self._snapshot()
        for name, doc in _WORKER_COUNTERS.items():
            yield CounterMetricFamily(f"memstream_worker_{name}", doc, value=float(s.get(name, 0)))
        dlq = CounterMetricFamily(
            "memstream_worker_dlq", "Records dead-lettered, by reason.", labels=["reason"]
        )
        for reason, n in s.get("dlq_by_reason", {}).items():
            dlq.add_metric([reason], float(n))
        yield dlq
        windows = CounterMetricFamily(
            "memstream_worker_windows", "Windows closed, by trigger.", labels=["trigger"]
        )
        for trigger, n in s.get("windows_by_trigger", {}).items():
            windows.add_metric([trigger], float(n))
        yield windows
        ttm = GaugeMetricFamily(
            "memstream_worker_time_to_memory_ms",
            "Time from a window's first message to its memories written (recent samples).",
            labels=["quantile"],
        )
        for q in ("p50", "p95"):
            value = s.get("time_to_memory_ms", {}).get(q)
            if value is not None:
                ttm.add_metric([q], float(value))
        yield ttm
        llm = s.get("llm", {})
        calls = CounterMetricFamily(
            "memstream_llm_calls", "Model calls by step (cache hits excluded).", labels=["step"]
        )
        for step, n in llm.get("calls_by_step", {}).items():
            calls.add_metric([step], float(n))
        yield calls
        cached = CounterMetricFamily(
            "memstream_llm_cached_calls", "Answers served from the cache.", labels=["step"]
        )
        for step, n in llm.get("cached_by_step", {}).items():
            cached.add_metric([step], float(n))
        yield cached
        tokens = CounterMetricFamily(
            "memstream_llm_tokens", "Prompt + completion tokens by step.", labels=["step"]
        )
        for step, n in llm.get("tokens_by_step", {}).items():
            tokens.add_metric([step], float(n))
        yield tokens
        errors = CounterMetricFamily(
            "memstream_llm_errors", "Model errors by step and kind.", labels=["step", "kind"]
        )
        for key, n in llm.get("errors", {}).items():
            step, _, kind = key.partition(":")
            errors.add_metric([step, kind], float(n))
        yield errors


def worker_metrics(snapshot: Callable[[], Mapping[str, Any]]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(snapshot))
    return generate_latest(registry)


class _EmbeddingCollector(Collector):
    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Any]:
        calls, queries = self._counts()
        yield CounterMetricFamily(
            "memstream_query_embed_calls", "Embedding model calls for queries.", value=calls
        )
        yield CounterMetricFamily("memstream_query_embeddings", "Queries embedded.", value=queries)


class ServiceMetrics:
    """Latency by route and results returned, for the query service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "memstream_http_request_seconds",
            "Request latency by route, method and status.",
            ["route", "method", "status"],
            buckets=(0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.results = Counter(
            "memstream_retrieved_memories",
            "Memories returned by retrieval.",
            registry=self.registry,
        )
        self.messages = Counter(
            "memstream_http_messages",
            "Messages posted to /v1/messages, by outcome (accepted, rejected, unavailable).",
            ["outcome"],
            registry=self.registry,
        )

    def watch_embedding(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Query embedding as (model calls, queries): their ratio is the batch size that
        concurrent requests reach."""
        self.registry.register(_EmbeddingCollector(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def too_large_body(limit: int) -> dict[str, Any]:
    return {"error": "request_too_large", "detail": {"max_bytes": limit}}


class BodyTooLarge(HTTPException):
    """A request body past the service's limit, found while it was read. An HTTP exception,
    so that FastAPI lets it through its body parsing untouched; the middleware answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "request_too_large")
        self.limit = limit


class ObserveMiddleware:
    """Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on the hot path):
    refuses bodies over ``limit`` bytes (413) and records latency by route and status."""

    def __init__(self, app: Any, *, metrics: ServiceMetrics, limit: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._too_large(send)
                self._observe(scope, 413, started)
                return
        status = 500
        received = 0

        async def receive_bounded() -> Any:
            # A body without a length (chunked) is counted as it arrives, never read whole.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def send_and_watch(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_bounded, send_and_watch)
        except BodyTooLarge:
            if status != 500:
                raise  # the response had started: nothing more can be said
            status = 413
            await self._too_large(send)
        finally:
            self._observe(scope, status, started)

    def _observe(self, scope: Any, status: int, started: float) -> None:
        path = getattr(scope.get("route"), "path", "unmatched")
        self.metrics.latency.labels(path, scope.get("method", ""), str(status)).observe(
            time.perf_counter() - started
        )

    async def _too_large(self, send: Any) -> None:
        body = json.dumps(too_large_body(self.limit))
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
