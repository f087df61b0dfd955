"""For operators: health and Prometheus metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException
from fastapi.responses import PlainTextResponse

from memstream.metrics import CONTENT_TYPE
from memstream.query.auth import ApiKey
from memstream.query.models import Health
from memstream.query.state import ServiceDep

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus_metrics(service: ServiceDep, key: ApiKey) -> PlainTextResponse:
    """Prometheus text format: latency by route, memories returned. With
    ``api.metrics_token`` set, only for requests bearing it."""
    token = service.settings.api.metrics_token
    if token is not None and not (key and hmac.compare_digest(key.encode(), token.encode())):
        raise HTTPException(401, "/metrics needs the metrics token (api.metrics_token)")
    return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/healthz", response_model=Health)
async def healthz(service: ServiceDep) -> Health:
    """Alive, and the store answers. No tenant data once API keys are configured."""
    store, embedder, _ = service.ready()
    count = await store.count()  # the store is reachable
    return Health(
        status="ok",
        store=store.backend,
        embedder=embedder.model_id,
        memories=None if service.access.enabled else count,
    )
