""":class:`leadflow.api.media.Bodies` reads an included router once per process, and what it reads
again is exactly what a fresh walk of the routes finds."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, FastAPI
from pydantic import BaseModel

from leadflow.api import media


class Thing(BaseModel):
    name: str


def make_router() -> APIRouter:
    router = APIRouter()

    @router.post("/things")
    def create(thing: Thing) -> dict[str, str]:
        return {"name": thing.name}

    @router.get("/things/{thing_id}")
    def read(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    return router


def app_with(router: APIRouter, prefix: str = "/api", **include: object) -> FastAPI:
    app = FastAPI()
    app.include_router(router, prefix=prefix, **include)  # type: ignore[arg-type]

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def found(bodies: media.Bodies) -> set[tuple[str, str, bool]]:
    return {(o.method, o.path, o.reads_json) for o in bodies.operations}


def test_a_second_app_reuses_what_the_first_read() -> None:
    router = make_router()
    first = media.Bodies(app_with(router).router.routes)
    second = media.Bodies(app_with(router).router.routes)
    assert found(first) == {
        ("POST", "/api/things", True),
        ("GET", "/api/things/{thing_id}", False),
        ("GET", "/health", False),
    }
    shared = [o for o in first.operations if o.path.startswith("/api/")]
    assert len(shared) == 2
    assert all(any(o is p for p in second.operations) for o in shared)  # the same objects: not read again
    assert second.reads_json("POST", "/api/things")
    assert not second.reads_json("GET", "/api/things/x")


def test_the_same_router_under_another_prefix_is_read_for_that_prefix() -> None:
    router = make_router()
    media.Bodies(app_with(router).router.routes)
    other = media.Bodies(app_with(router, prefix="/v2").router.routes)
    assert ("POST", "/v2/things", True) in found(other)
    assert not any(o.path.startswith("/api/") for o in other.operations)


def test_a_route_added_later_is_seen() -> None:
    router = make_router()
    media.Bodies(app_with(router).router.routes)

    @router.put("/things/{thing_id}")
    def replace(thing_id: str, thing: Thing) -> dict[str, str]:
        return {"id": thing_id, "name": thing.name}

    assert ("PUT", "/api/things/{thing_id}", True) in found(media.Bodies(app_with(router).router.routes))


def test_an_inclusion_with_dependencies_is_read_for_itself() -> None:
    """The same router included with a dependency is another inclusion: what is read for it equals a
    fresh walk of that app's routes."""

    def note(note: str = Body(default="")) -> str:
        return note

    router = make_router()
    media.Bodies(app_with(router).router.routes)
    routes = app_with(router, dependencies=[Depends(note)]).router.routes
    assert media.Bodies(routes).operations == media._operations(routes)


def test_what_is_read_again_equals_a_fresh_walk() -> None:
    router = make_router()
    for _ in range(2):
        routes = app_with(router).router.routes
        assert media.Bodies(routes).operations == media._operations(routes)
