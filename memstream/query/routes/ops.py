"""For operators: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from memstream.metrics import CONTENT_TYPE
from memstream.query.models import Health
from memstream.query.state import ServiceDep

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus_metrics(service: ServiceDep) -> PlainTextResponse:
    """Prometheus text format: latency by route, memories returned."""
    return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/healthz", response_model=Health)
async def healthz(service: ServiceDep) -> Health:
    store, embedder, _ = service.ready()
    return Health(
        status="ok", store=store.backend, embedder=embedder.model_id, memories=await store.count()
    )
