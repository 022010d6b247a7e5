"""Which operations read a JSON body, decided once from the app's routes.

An operation reads JSON when FastAPI gives it a body field that is not a form (``Body``, a model):
FastAPI parses such a body only when it is sent as JSON. Operations that read their own body (a CSV
import, ``/email/inbound``, the feedback webhooks whatever their content type, the tracking API) or
take a form have none, and keep their own rules. The same answer serves the edge (which answers
``415`` to another media type, :mod:`leadflow.api.edge`) and the OpenAPI document (which says so,
:mod:`leadflow.api.openapi`), so the two cannot disagree.

The routes are read through what FastAPI builds its own document from: since FastAPI 0.16x an included
router stays one nested route (``iter_route_contexts`` yields its routes with their full paths); before,
included routes were copied flat into ``app.routes``.

Reading an included router's routes makes FastAPI build each one's dependency state again (about 2 ms a
route, over 300 routes), and every app has its own included-router wrappers. What a router's operations
are depends only on the router, its routes and how it was included, so it is read once per process
(:func:`_included`): an app built for each test, or each worker, then starts in milliseconds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

from fastapi import params, routing
from starlette.routing import BaseRoute

JSON = "application/json"


def is_json(content_type: bytes | None) -> bool:
    """A JSON media type: ``application/json`` or ``application/*+json`` (parameters ignored)."""
    if content_type is None:
        return False
    kind = content_type.decode("latin-1").partition(";")[0].strip().lower()
    return kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    pattern: re.Pattern[str]
    reads_json: bool


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[tuple[routing.APIRoute, str, re.Pattern[str]]]:
    """Every API route with its full path and pattern, in the order requests are matched."""
    contexts = getattr(routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI before 0.16x: included routes are flat
        for route in routes:
            if isinstance(route, routing.APIRoute):
                yield route, route.path_format, route.path_regex
        return
    for context in contexts(routes):
        route = context.original_route
        if isinstance(route, routing.APIRoute):
            yield route, context.path_format, context.path_regex


def _reads_json(route: routing.APIRoute) -> bool:
    field = route.body_field
    return field is not None and not isinstance(field.field_info, params.Form)  # File is a Form


def _operations(routes: Sequence[BaseRoute]) -> list[Operation]:
    return [
        Operation(method, path, pattern, _reads_json(route))
        for route, path, pattern in _api_routes(routes)
        for method in sorted(route.methods or ())
    ]


_INCLUDED = getattr(routing, "_IncludedRouter", None)  # FastAPI 0.16x's wrapper of an included router
_read: dict[Hashable, tuple[object, tuple[Operation, ...]]] = {}  # key -> (the router, its operations)
_reading = threading.Lock()


def _inclusion(route: BaseRoute) -> Hashable | None:
    """What an included router's operations depend on: the router (by address: :data:`_read` holds it,
    so no later router can have the same one), the version of its route list, and the inclusion's prefix
    and dependencies. ``None`` for any other route."""
    if _INCLUDED is None or not isinstance(route, _INCLUDED):
        return None
    router = getattr(route, "original_router", None)
    context = getattr(route, "include_context", None)
    version = getattr(router, "_get_routes_version", None)
    if router is None or context is None or version is None:
        return None
    dependencies = tuple(d.dependency for d in getattr(context, "dependencies", ()))
    key = (id(router), version(), getattr(context, "prefix", None), dependencies)
    try:
        hash(key)
    except TypeError:  # a dependency that cannot be a key: read this router each time
        return None
    return key


def _included(route: BaseRoute, key: Hashable) -> tuple[Operation, ...]:
    with _reading:
        known = _read.get(key)
        if known is None:
            router: object = route.original_router  # type: ignore[attr-defined]  # an _IncludedRouter
            known = _read[key] = (router, tuple(_operations([route])))
        return known[1]


class Bodies:
    """The app's operations, each knowing whether it reads a JSON body."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.operations: list[Operation] = []
        for route in routes:
            key = _inclusion(route)
            self.operations.extend(_operations([route]) if key is None else _included(route, key))
        self._by_method: dict[str, list[Operation]] = {}
        for operation in self.operations:
            self._by_method.setdefault(operation.method, []).append(operation)

    def reads_json(self, method: str, path: str) -> bool:
        """Whether the operation a request reaches reads JSON: the first route matching both its path
        and its method is the one that answers it, as in routing."""
        for operation in self._by_method.get(method, ()):
            if operation.pattern.match(path):
                return operation.reads_json
        return False

    def json_operations(self) -> set[tuple[str, str]]:
        """``(method, path)`` as the OpenAPI document names them (``post``, ``/api/v1/contacts``)."""
        return {(o.method.lower(), o.path) for o in self.operations if o.reads_json}
