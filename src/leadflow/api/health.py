"""``/healthz`` and ``/metrics`` (Prometheus), both without authentication for probes and scrapers."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import context

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    database: str
    pending_events: int
    processing_lag_seconds: float


def backlog(ctx: AppContext) -> tuple[int, float]:
    with ctx.db.read() as conn:
        pending, oldest = events.backlog(conn)
    lag = max(0.0, (ctx.clock.now() - oldest).total_seconds()) if oldest else 0.0
    return pending, lag


@router.get("/healthz", response_model=Health, summary="Database reachable, and how far processing lags")
def healthz(ctx: AppContext = Depends(context)) -> Health | JSONResponse:
    try:
        pending, lag = backlog(ctx)
    except SQLAlchemyError as exc:
        return JSONResponse(
            {
                "status": "error",
                "database": f"unreachable: {type(exc).__name__}",
                "pending_events": 0,
                "processing_lag_seconds": 0.0,
            },
            status_code=503,
        )
    return Health(status="ok", database="ok", pending_events=pending, processing_lag_seconds=lag)


class BacklogCollector(Collector):
    """Gauges read from the database at scrape time, so they are true for the whole cluster."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            pending, lag = backlog(self.ctx)
        except SQLAlchemyError:
            return
        yield GaugeMetricFamily("leadflow_events_pending", "Events waiting to be processed", value=pending)
        with self.ctx.db.read() as conn:
            failed = events.failed_count(conn)
        yield GaugeMetricFamily(
            "leadflow_events_failed", "Events set aside with an error (requeue with the CLI)", value=failed
        )
        yield GaugeMetricFamily(
            "leadflow_processing_lag_seconds", "Age of the oldest event waiting to be processed", value=lag
        )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(ctx: AppContext = Depends(context)) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
