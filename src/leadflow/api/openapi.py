"""The OpenAPI document names every status a REST operation answers, each error with :class:`ErrorBody`.

FastAPI documents only the success and ``422``. The rest follows from what an operation is, so it is
added here in one pass over the generated document (whatever the FastAPI version builds it from):

* it needs a key (it has ``security``): ``401`` no or unknown key, ``403`` a key without the scope,
  ``429`` past the key's rate limit;
* it names an item in its path: ``404``;
* it takes parameters or a body: ``422``; a body: ``400`` (not JSON) and ``413`` (over
  ``LEADFLOW_API_MAX_BODY_BYTES``, ``LEADFLOW_IMPORT_MAX_BYTES`` for a CSV import); ``415`` when it
  reads JSON (:mod:`leadflow.api.media`, from the routes: the document alone cannot tell a JSON body
  from a webhook that documents JSON but reads whatever it is sent) or only other media types;
* it pages (a ``cursor`` parameter): ``400`` for a cursor it did not hand out;
* it can collide with existing data (:data:`CONFLICTS`, the few that can): ``409``.

``POST /api/v1/contacts`` answers ``201`` when it creates the contact and ``200`` when it updates one
(:data:`CREATED_OR_UPDATED`); both are documented with the contact.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from leadflow.api.media import Bodies

REST = "/api/v1/"
HOOKS = "/hooks/"  # incoming webhooks: documented like the REST API (their 422 is a 400)
ERROR_REF = "#/components/schemas/ErrorBody"
JSON = "application/json"


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: `contact_not_found`, `insufficient_scope`, ...")
    message: str = Field(description="for people")
    details: Any = Field(default=None, description="per problem, when there are several (validation)")


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message", "details"?}}``."""

    error: ErrorDetail


REASONS = {
    400: "malformed request: a body that is not JSON, or a cursor this API did not hand out",
    401: "no API key, or an unknown or revoked one",
    403: "the key lacks the scope this operation needs",
    404: "no such item",
    409: "conflicts with existing data",
    413: "the body is larger than LEADFLOW_API_MAX_BODY_BYTES (LEADFLOW_IMPORT_MAX_BYTES for a CSV import)",
    415: "the body is not of the media type this operation reads",
    422: "well-formed but invalid",
    429: "the key is past its rate limit; retry after Retry-After seconds",
}

CONFLICTS = frozenset(
    {
        ("post", "/api/v1/contacts"),
        ("patch", "/api/v1/contacts/{contact_id}"),
        ("post", "/api/v1/segments"),
        ("delete", "/api/v1/segments/{segment_id}"),
        ("post", "/api/v1/journeys"),
        ("patch", "/api/v1/journeys/{journey_id}"),
        ("delete", "/api/v1/journeys/{journey_id}"),
        ("post", "/api/v1/journeys/{journey_id}/publish"),
        ("post", "/api/v1/journeys/{journey_id}/pause"),
        ("post", "/api/v1/journeys/{journey_id}/resume"),
        ("post", "/api/v1/journeys/{journey_id}/archive"),
        ("post", "/api/v1/email/templates"),
        ("post", "/api/v1/broadcasts/{broadcast_id}/schedule"),
        ("post", "/api/v1/broadcasts/{broadcast_id}/cancel"),
        ("post", "/api/v1/email/feedback/{provider}"),  # a provider's signature replayed
        ("post", "/api/v1/crm/users"),  # the email is taken
        ("post", "/api/v1/webhooks/endpoints/{endpoint_id}/test"),  # the endpoint is off
        ("post", "/api/v1/webhooks/endpoints/{endpoint_id}/replay"),  # the endpoint is off
        ("post", "/api/v1/webhooks/deliveries/{delivery_id}/replay"),  # still queued, erased, endpoint off
        ("patch", "/api/v1/crm/users/{user_id}"),
        ("delete", "/api/v1/crm/users/{user_id}"),  # the user owns leads or activities
        ("post", "/api/v1/crm/teams"),  # the name is taken
        ("post", "/api/v1/crm/pipelines"),  # the name is taken
        ("put", "/api/v1/crm/pipelines/{pipeline_id}"),  # the name is taken, a removed stage is in use
        ("delete", "/api/v1/crm/pipelines/{pipeline_id}"),  # the pipeline has deals
        ("patch", "/api/v1/crm/teams/{team_id}"),
        ("post", "/api/v1/webhooks/sources"),  # the name is taken
        ("post", "/api/v1/calendar/consultants"),  # the user is a consultant already
        ("post", "/api/v1/webhooks/inbound/{inbound_id}/replay"),  # it was processed already
    }
)
CREATED_OR_UPDATED = frozenset({("post", "/api/v1/contacts")})


def error_statuses(
    method: str, path: str, operation: dict[str, Any], json_bodies: frozenset[tuple[str, str]] = frozenset()
) -> set[int]:
    """The error statuses an operation can answer, from what it is (see the module's docstring);
    ``json_bodies`` names the operations that read JSON, ``(method, path)``."""
    found: set[int] = set()
    parameters = operation.get("parameters", [])
    body = operation.get("requestBody")
    if operation.get("security"):
        found |= {401, 403, 429}
    if any(p.get("in") == "path" for p in parameters):
        found.add(404)
    if parameters or body:
        found.add(422)
    if body:
        found |= {400, 413}
        if (method, path) in json_bodies or any(
            kind != JSON and not kind.endswith("+json") for kind in body.get("content", {})
        ):
            found.add(415)
    if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
        found.add(400)
    if (method, path) in CONFLICTS:
        found.add(409)
    return found


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": REASONS[status],
        "content": {JSON: {"schema": {"$ref": ERROR_REF}}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def _created_or_updated(responses: dict[str, Any]) -> None:
    success = responses.get("200") or responses.get("201") or {}
    content = success.get("content", {})
    responses["201"] = {"description": "created", "content": content}
    responses["200"] = {
        "description": "updated (it existed); repeating a request changes nothing",
        "content": content,
    }


def document(schema: dict[str, Any], json_bodies: frozenset[tuple[str, str]] = frozenset()) -> dict[str, Any]:
    """Add the error responses and :class:`ErrorBody` to a generated document (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    found = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(found.pop("$defs", {}))
    components["ErrorBody"] = found
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith((REST, HOOKS)):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(error_statuses(method, path, operation, json_bodies)):
                responses[str(status)] = _error_response(status)
            if (method, path) in CREATED_OR_UPDATED:
                _created_or_updated(responses)
    if "/HTTPValidationError'" not in repr(schema["paths"]):
        components.pop("HTTPValidationError", None)  # every 422 is an ErrorBody now
        components.pop("ValidationError", None)
    return schema


def install(app: FastAPI) -> None:
    """Generate the document once, then complete it (FastAPI caches it in ``app.openapi_schema``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            json_bodies = frozenset(Bodies(app.router.routes).json_operations())
            app.openapi_schema = document(generate(), json_bodies)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
