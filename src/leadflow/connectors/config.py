"""Connector instances: one per vendor account, created and changed by staff.

Credentials are sealed (:class:`~leadflow.kernel.sealed.Sealer`, purpose ``leadflow.connectors``) the
moment they arrive and are opened only by the worker and "test connection"; no view of a connector
holds them (``has_credentials`` says whether some are set). Everything else is declarative JSON checked
here: the vendor's ``options`` (its non-secret settings — Pipedrive's pipeline, Salesforce's object,
Mailchimp's audience — checked by the vendor module's ``OPTIONS``: :mod:`leadflow.connectors.options`;
shown, unlike the credentials), the mapping (:mod:`leadflow.connectors.mapping`), the triggers
(:mod:`leadflow.connectors.triggers`),
the objects synced, the direction (``push``, or ``both`` to pull remote changes too), the conflict
policy per remote field (``leadflow`` wins, ``remote`` wins, ``newest`` wins by the vendor's
modification time; ``"*"`` the default), rate-limit overrides and the health threshold.

A connector is created with its vendor's default mapping, a ``mapping`` of its own, or a ``preset``: a
ready-made mapping the vendor module ships (ActiveCampaign's ``event-registration``), listed by
:func:`presets`; the preset's mapping is stored (a later preset change does not move a connector).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.connectors import mapping, options, queries, registry, triggers
from leadflow.kernel import jsonutil, netguard
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.kernel.sealed import Sealer

PURPOSE = "leadflow.connectors"
DIRECTIONS = ("push", "both")
POLICIES = ("leadflow", "remote", "newest")
OBJECTS = ("contact", "company", "deal", "activity")
DEFAULT_THRESHOLD = 0.99


@dataclass(frozen=True)
class Connector:
    """A connector as the worker uses it (``credentials`` opened)."""

    id: str
    vendor: str
    name: str
    credentials: Mapping[str, Any]
    options: Mapping[str, Any]
    host: str | None
    mapping: list[mapping.Entry]
    raw_mapping: list[Any]
    triggers: triggers.Triggers
    objects: frozenset[str]
    direction: str
    conflict: Mapping[str, str]
    limits: Mapping[str, Any]
    active: bool
    health_threshold: float
    pulled_until: datetime | None
    updated_at: datetime

    def policy(self, remote_field: str) -> str:
        return self.conflict.get(remote_field) or self.conflict.get("*") or "leadflow"


def sealer(ctx: AppContext) -> Sealer:
    return Sealer(ctx.secret_key, PURPOSE)


def _objects(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw or any(item not in OBJECTS for item in raw):
        raise Invalid(f"objects is a list of {', '.join(OBJECTS)}", code="invalid_objects")
    if "contact" not in raw:
        raise Invalid("a connector syncs contacts at least", code="invalid_objects")
    return sorted(set(raw), key=OBJECTS.index)


def _conflict(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping) or any(v not in POLICIES for v in raw.values()):
        raise Invalid(
            f"conflict maps remote fields (or '*') to one of {', '.join(POLICIES)}", code="invalid_conflict"
        )
    return {str(k): str(v) for k, v in raw.items()}


def _limits(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - {"rate", "burst", "batch"}:
        raise Invalid("limits has rate, burst and batch", code="invalid_limits")
    for value in raw.values():
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0 or value > 100_000:
            raise Invalid("each limit is a positive number", code="invalid_limits")
    return dict(raw)


def _host(ctx: AppContext, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.startswith(("http://", "https://")) or len(raw) > 2000:
        raise Invalid("host is an http(s) URL", code="invalid_host")
    refused = netguard.refusal(raw, ctx.settings)
    if refused is not None:
        raise Invalid(refused, code="blocked_host")
    return raw.rstrip("/")


def checked(ctx: AppContext, values: Mapping[str, Any], vendor: str | None = None) -> dict[str, Any]:
    """The stored form of the given settings (only those given), checked; ``vendor`` the connector's
    (an update's), else the one given."""
    found: dict[str, Any] = {}
    if "vendor" in values:
        registry.factory(values["vendor"])
        found["vendor"] = vendor = values["vendor"]
    if "options" in values:
        kind = registry.factory(vendor)
        found["options"] = options.checked(kind.name, kind.options, values["options"])
    if "name" in values:
        found["name"] = values["name"]
    if "credentials" in values:
        given = values["credentials"]
        if not isinstance(given, Mapping) or not given:
            raise Invalid("credentials is an object (e.g. an access_token)", code="invalid_credentials")
        found["credentials"] = sealer(ctx).seal(jsonutil.dumps(dict(given)))
    if "host" in values:
        found["host"] = _host(ctx, values["host"])
    if "mapping" in values:
        mapping.parse(values["mapping"])
        found["mapping"] = values["mapping"]
    if "triggers" in values:
        found["triggers"] = triggers.parse(values["triggers"]).raw
    if "objects" in values:
        found["objects"] = _objects(values["objects"])
    if "direction" in values:
        if values["direction"] not in DIRECTIONS:
            raise Invalid("direction is push or both", code="invalid_direction")
        found["direction"] = values["direction"]
    if "conflict" in values:
        found["conflict"] = _conflict(values["conflict"])
    if "limits" in values:
        found["limits"] = _limits(values["limits"])
    for name in ("active", "health_threshold"):
        if name in values:
            found[name] = values[name]
    return found


def view(row: Any) -> dict[str, Any]:
    """What the API shows of a connector: never its credentials."""
    data = {k: v for k, v in row._mapping.items() if k != "credentials"}
    data["has_credentials"] = bool(row.credentials)
    return data


def opened(ctx: AppContext, row: Any) -> Connector:
    secret = sealer(ctx).unseal(row.credentials, what=f"connector {row.id}'s credentials")
    return Connector(
        id=row.id,
        vendor=row.vendor,
        name=row.name,
        credentials=jsonutil.loads(secret),
        options=dict(row.options or {}),
        host=row.host,
        mapping=mapping.parse(row.mapping),
        raw_mapping=list(row.mapping),
        triggers=triggers.parse(row.triggers),
        objects=frozenset(row.objects),
        direction=row.direction,
        conflict=dict(row.conflict or {}),
        limits=dict(row.limits or {}),
        active=row.active,
        health_threshold=row.health_threshold,
        pulled_until=row.pulled_until,
        updated_at=row.updated_at,
    )


def row_of(conn: Connection, connector_id: str) -> Any:
    row = conn.execute(queries.CONNECTOR, {"connector_id": connector_id}).first()
    if row is None:
        raise NotFound(f"no connector {connector_id}", code="connector_not_found")
    return row


def _public(name: str) -> str:
    return name.replace("_", "-")


def presets(vendor: str | None = None) -> list[dict[str, Any]]:
    """The ready-made mappings (``default`` too) of every vendor, or of one: vendor, name, mapping."""
    kinds = [registry.factory(vendor)] if vendor is not None else list(registry.VENDORS.values())
    return [
        {"vendor": kind.name, "name": _public(name), "mapping": list(found)}
        for kind in kinds
        for name, found in sorted({"default": kind.default_mapping, **kind.presets}.items())
    ]


def preset_mapping(vendor: str, name: Any) -> list[dict[str, Any]]:
    """The mapping of a vendor's preset (``event-registration`` or ``event_registration``)."""
    known = {row["name"]: row["mapping"] for row in presets(vendor)}
    found: list[dict[str, Any]] | None = known.get(_public(name)) if isinstance(name, str) else None
    if found is None:
        raise Invalid(f"{vendor}'s presets are {', '.join(sorted(known))}", code="unknown_preset")
    return found


def create(ctx: AppContext, values: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    vendor = registry.factory(values.get("vendor", ""))
    if values.get("preset") is not None:
        if values.get("mapping") is not None:
            raise Invalid("give a preset or a mapping, not both", code="invalid_mapping")
        values = {**values, "mapping": preset_mapping(vendor.name, values["preset"])}
    values = {k: v for k, v in values.items() if k != "preset"}
    defaults: dict[str, Any] = {
        "mapping": vendor.default_mapping,
        "triggers": triggers.DEFAULT,
        "objects": ["contact"],
        "direction": "push",
        "conflict": {"*": "leadflow"},
        "limits": None,
        "active": True,
        "health_threshold": DEFAULT_THRESHOLD,
        "host": None,
        "options": {},
    }
    given = {k: v for k, v in values.items() if v is not None or k == "host"}
    stored = checked(ctx, {**defaults, **given})
    if "credentials" not in stored:
        raise Invalid("credentials are required", code="invalid_credentials")
    now = ctx.clock.now()
    row = {
        "id": new_id(),
        **stored,
        "pulled_until": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }
    with ctx.db.write() as conn:
        conn.execute(queries.INSERT_CONNECTOR, row)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="connector.created",
            entity_type="connector",
            entity_id=row["id"],
            data={"vendor": row["vendor"], "name": row["name"]},
        )
        return view(row_of(conn, row["id"]))


def update(ctx: AppContext, connector_id: str, values: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    if "vendor" in values:
        raise Invalid("a connector's vendor cannot change", code="vendor_fixed")
    with ctx.db.write() as conn:
        stored = checked(ctx, values, row_of(conn, connector_id).vendor)
        conn.execute(queries.update_connector(connector_id, {**stored, "updated_at": ctx.clock.now()}))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="connector.updated",
            entity_type="connector",
            entity_id=connector_id,
            data={"changed": sorted(stored)},
        )
        return view(row_of(conn, connector_id))


def delete(ctx: AppContext, connector_id: str, *, actor: str) -> None:
    params = {"connector_id": connector_id}
    with ctx.db.write() as conn:
        row_of(conn, connector_id)
        for statement in (
            queries.DROP_OUTBOX,
            queries.DROP_CONNECTOR_LINKS,
            queries.DROP_CONNECTOR_AUDIT,
            queries.DROP_CONNECTOR_CONFLICTS,
            queries.DELETE_CONNECTOR,
        ):
            conn.execute(statement, params)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="connector.deleted",
            entity_type="connector",
            entity_id=connector_id,
            data={},
        )


def get(ctx: AppContext, connector_id: str) -> dict[str, Any]:
    with ctx.db.read() as conn:
        return view(row_of(conn, connector_id))


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [view(row) for row in conn.execute(queries.connectors_page(after, limit))]


def load(ctx: AppContext, connector_id: str) -> Connector:
    with ctx.db.read() as conn:
        return opened(ctx, row_of(conn, connector_id))
