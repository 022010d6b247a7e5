"""The FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from leadflow import __version__
from leadflow.analytics.alerts_api import router as analytics_alerts_router
from leadflow.analytics.api import router as analytics_router
from leadflow.analytics.digests_api import router as analytics_digests_router
from leadflow.analytics.insights_api import router as analytics_insights_router
from leadflow.api import docs, errors, openapi
from leadflow.api.edge import InputGuard, Unexpected
from leadflow.api.health import BacklogCollector
from leadflow.api.health import router as health_router
from leadflow.api.limits import BodyLimit, Limit
from leadflow.audit.api import router as audit_router
from leadflow.auth.api import router as keys_router
from leadflow.auth.service import KeyCache
from leadflow.capture.api import flows_router as capture_flows_router
from leadflow.capture.api import router as forms_router
from leadflow.capture.public_api import router as hosted_forms_router
from leadflow.connectors.api import router as connectors_router
from leadflow.contacts.api import router as contacts_router
from leadflow.crm import service as crm
from leadflow.crm.api import router as crm_router
from leadflow.crm.deals_api import router as crm_deals_router
from leadflow.crm.people_api import router as crm_people_router
from leadflow.crm.routing_api import router as crm_routing_router
from leadflow.events.api import router as tracking_router
from leadflow.journeys.api import contact_router as journey_runs_router
from leadflow.journeys.api import router as journeys_router
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import ApiState
from leadflow.kernel.ratelimit import RateLimiter
from leadflow.lifecycle.api import router as lifecycle_router
from leadflow.messaging.api import contact_router as contact_messages_router
from leadflow.messaging.api import router as email_router
from leadflow.messaging.delivery.broadcasts_api import router as broadcasts_router
from leadflow.messaging.feedback.api import router as recipient_router
from leadflow.messaging.suppressions_api import router as suppressions_router
from leadflow.privacy.api import router as privacy_router
from leadflow.runtime.worker import Worker
from leadflow.scheduling.api import router as calendar_router
from leadflow.scheduling.public_api import router as calendar_links_router
from leadflow.scoring.api import router as scoring_router
from leadflow.segments.api import router as segments_router
from leadflow.web import service as web
from leadflow.webhooks.api import router as webhooks_router
from leadflow.webhooks.inbound_api import hooks_router
from leadflow.webhooks.inbound_api import router as inbound_router

DESCRIPTION = """Marketing automation and CRM integration engine.

* **Tracking API** (`/v1/*`): Segment-compatible; authenticate with a write key (Basic auth user name).
* **REST API** (`/api/v1/*`): `Authorization: Bearer <API key>`; scopes `ingest`, `read`, `write`, `admin`.
* Errors: `{"error": {"code": "...", "message": "..."}}`; lists: `{"data": [...], "next_cursor": ...}`.
"""


log = logging.getLogger(__name__)


def create_app(ctx: AppContext, *, run_worker: bool = True, worker_concurrency: int = 1) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.signals.listen()
        try:
            crm.ensure_default_pipeline(ctx)  # the course-sales pipeline, if the database has none
        except SQLAlchemyError as exc:
            log.warning("could not create the default pipeline yet: %s", exc)
        worker = Worker(ctx, concurrency=worker_concurrency) if run_worker else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()

    app = FastAPI(
        title="leadflow",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by leadflow.api.docs, without a CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.api = ApiState(
        ctx=ctx,
        keys=KeyCache(ctx.db, ctx.clock),
        api_limiter=RateLimiter(ctx.settings.api_rate_limit, clock=ctx.clock),
        ingest_limiter=RateLimiter(ctx.settings.ingest_rate_limit, clock=ctx.clock),
    )
    ctx.metrics.registry.register(BacklogCollector(ctx))
    errors.install(app)
    docs.install(app)
    openapi.install(app)
    # Built at start-up, once every router below is included; inside the body limit: it reads at most
    # that many bytes.
    app.add_middleware(InputGuard, routes=app.router.routes)
    rest = Limit(ctx.settings.api_max_body_bytes, "LEADFLOW_API_MAX_BODY_BYTES")
    imports = Limit(ctx.settings.import_max_bytes, "LEADFLOW_IMPORT_MAX_BYTES")
    app.add_middleware(BodyLimit, limit=rest, paths={"/api/v1/imports": imports}, prefix=("/api/", "/hooks/"))
    hosted_forms = Limit(ctx.settings.form_max_body_bytes, "LEADFLOW_FORM_MAX_BODY_BYTES")
    app.add_middleware(BodyLimit, limit=hosted_forms, prefix=("/f/", "/calendar/"))  # and booking links
    app.add_middleware(BodyLimit, limit=hosted_forms, prefix="/app/")  # the console's forms
    app.add_middleware(Unexpected)
    routers = (
        tracking_router,
        contacts_router,
        privacy_router,
        contact_messages_router,
        journey_runs_router,
        segments_router,
        scoring_router,
        lifecycle_router,
        journeys_router,
        crm_router,
        crm_people_router,
        crm_routing_router,
        crm_deals_router,
        email_router,
        recipient_router,
        broadcasts_router,
        suppressions_router,
        forms_router,
        capture_flows_router,
        hosted_forms_router,
        calendar_router,
        calendar_links_router,
        webhooks_router,
        connectors_router,
        analytics_router,
        analytics_insights_router,
        analytics_alerts_router,
        analytics_digests_router,
        keys_router,
        audit_router,
        inbound_router,
        hooks_router,
        health_router,
    )
    for router in routers:
        app.include_router(router)
    web.install(app, ctx)  # the console: pages at /app, its stylesheet at /app/static
    return app
