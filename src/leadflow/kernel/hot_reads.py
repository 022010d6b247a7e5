"""Hot reads: the API's most frequent reads served without FastAPI's per-request dependency solving.

A contact by id spent about a third of its CPU in the framework around the read: solving the
``context`` and ``require`` dependencies, validating the path and query parameters against their
models, and the wrapper that hands the endpoint to a worker thread. Measured in process on the same
read, 1.7-1.8 ms a request through the FastAPI route against 1.25-1.3 ms through a plain handler doing
the same key check, read and serialisation; at a fixed 500 reads/s on two cores that difference is the
queue ``bench/api.py`` measures.

:class:`HotRoute` keeps such a route exactly as FastAPI documents and validates it (its parameters,
response model and key scope: the OpenAPI document does not change), and serves the requests its *hot
twin* takes with that twin instead:

* ``accepts(request)`` decides, without reading anything, whether the twin can answer the request as the
  route would (the contact list takes ``?email=`` alone and ``?q=`` alone; any other parameter goes to
  FastAPI);
* the key is checked as the route's ``require(scope)`` dependency checks it (:func:`http.admit_bearer`:
  the same header parsing, key cache, scope and rate limit, so the same ``401``/``403``/``429``);
* ``read(request, conn)`` makes its read and returns the response, raising the same errors
  (:class:`~leadflow.kernel.errors.LeadflowError`) the endpoint raises. A read of one statement that
  costs a fraction of a millisecond (a look-up by a unique key) runs in the event loop on the process's
  loop connection where the database offers one (:meth:`Database.read_in_loop`: PostgreSQL); any other
  (``in_loop(request)`` false: a text search, whose cost depends on the text) in a worker thread as the
  route would, on a connection outside a transaction (:meth:`Database.read_one`).

``tests/integration/test_hot_reads.py`` asks both ways the same requests and requires the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from leadflow.kernel import http
from leadflow.kernel.context import AppContext

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
TWIN = "__leadflow_hot_twin__"  # the attribute of an endpoint holding its twin

SERVE_HOT = True
"""Whether hot twins answer (tests turn it off to ask FastAPI's route the same requests)."""
IN_LOOP = True
"""Whether a twin reads in the event loop when the database offers it (:meth:`Database.read_in_loop`)."""


def _always(_: Request) -> bool:
    return True


Read = Callable[[Request, Connection], Response]


@dataclass(frozen=True)
class Twin:
    scope: str
    read: Read
    accepts: Callable[[Request], bool]
    in_loop: Callable[[Request], bool] = _always


def _in_thread(read: Read, request: Request, ctx: AppContext) -> Response:
    with ctx.db.read_one() as conn:
        return read(request, conn)


def hot(
    scope: str,
    read: Read,
    *,
    accepts: Callable[[Request], bool] = _always,
    in_loop: Callable[[Request], bool] = _always,
) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint a hot twin. Put it *below* the route decorator (``@router.get(...)`` builds the
    route when it runs), on a router whose ``route_class`` is :class:`HotRoute`; ``scope`` is the one the
    endpoint's ``require`` asks."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, TWIN, Twin(scope, read, accepts, in_loop))
        return endpoint

    return mark


def twin_of(endpoint: Callable[..., Any]) -> Twin | None:
    twin: Twin | None = getattr(endpoint, TWIN, None)
    return twin


class HotRoute(APIRoute):
    """An :class:`APIRoute` whose endpoint may have a hot twin (:func:`hot`); without one, an APIRoute."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.endpoint
        if twin_of(endpoint) is None:
            return full

        async def handler(request: Request) -> Response:
            twin = twin_of(endpoint)  # read each time: a test may wrap it
            if twin is None or not SERVE_HOT or not twin.accepts(request):
                return await full(request)
            await http.admit_bearer(request, twin.scope)
            ctx = http.state(request).ctx
            if IN_LOOP and twin.in_loop(request):
                with ctx.db.read_in_loop() as conn:
                    if conn is not None:
                        return twin.read(request, conn)
            return await run_in_threadpool(_in_thread, twin.read, request, ctx)

        return handler
