"""Starting the HTTP server (uvicorn) in this process or in several."""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI

from leadflow.api.app import create_app
from leadflow.kernel.context import AppContext
from leadflow.runtime import collector
from leadflow.runtime.context import build_context

_WORKER_ENV = "LEADFLOW_SERVE_RUN_WORKER"


def app_from_environment() -> FastAPI:
    """Factory for multi-process serving: each process builds its own context from the environment."""
    app = create_app(build_context(), run_worker=os.environ.get(_WORKER_ENV, "1") == "1")
    collector.tune()
    return app


def serve(ctx: AppContext, *, host: str, port: int, run_worker: bool, processes: int, log_level: str) -> None:
    if processes <= 1:
        app = create_app(ctx, run_worker=run_worker)
        collector.tune()
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    os.environ[_WORKER_ENV] = "1" if run_worker else "0"
    uvicorn.run(
        "leadflow.api.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_level=log_level,
    )
