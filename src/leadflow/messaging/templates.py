"""Email templates, layouts and preference-centre topics: saved, validated Liquid (MJML compiled once)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.messaging import queries
from leadflow.messaging.build import render

KEY = r"^[a-z0-9][a-z0-9_.\-]{0,99}$"
HTML_CHARS = 500_000  # the most HTML a template holds, given as is or compiled from MJML


class TemplateFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["marketing", "transactional"] = "marketing"
    topic: str | None = Field(default=None, max_length=64)
    layout: str | None = Field(default=None, max_length=100)
    subject: str = Field(min_length=1, max_length=1000)
    html: str | None = Field(default=None, max_length=HTML_CHARS)
    text: str | None = Field(default=None, max_length=500_000)
    mjml: str | None = Field(default=None, max_length=500_000)

    @model_validator(mode="after")
    def _body(self) -> TemplateFields:
        if (self.html is None) == (self.mjml is None):
            raise ValueError("give the body as 'html' (Liquid) or as 'mjml', not both")
        return self


class TemplateCreate(TemplateFields):
    key: str = Field(pattern=KEY)


class Template(BaseModel):
    id: str
    key: str
    name: str
    kind: str
    topic: str | None
    layout: str | None
    subject: str
    html: str
    text: str | None
    mjml: str | None
    revision: int
    created_at: datetime
    updated_at: datetime


class LayoutFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=200)
    html: str = Field(min_length=1, max_length=500_000)
    text: str | None = Field(default=None, max_length=500_000)


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    default_subscribed: bool = True


def _html(fields: TemplateFields) -> str:
    """The template's HTML; MJML expands about twentyfold, and its HTML is held to the same size."""
    if fields.mjml is not None:
        try:
            html = render.compile_mjml(fields.mjml)
        except render.TemplateError as exc:
            raise Invalid(str(exc), code="invalid_template") from None
        if len(html) > HTML_CHARS:
            raise Invalid(
                f"the MJML compiles to {len(html):,} characters of HTML (at most {HTML_CHARS:,})",
                code="template_limit_exceeded",
            )
        return html
    assert fields.html is not None
    return fields.html


def _check(key: str, subject: str, html: str, text: str | None) -> None:
    """Refuse (422) a template that does not parse, uses an unknown filter or ``include``/``render``, or
    goes over a resource limit whatever the data (`render.check`)."""
    try:
        render.check(render.Source(key=key, revision=0, subject=subject, html=html, text=text))
    except render.TemplateTooCostly as exc:
        raise Invalid(str(exc), code="template_limit_exceeded") from None
    except render.TemplateError as exc:
        raise Invalid(str(exc), code="invalid_template") from None


def _check_links(conn: Connection, fields: TemplateFields) -> None:
    if fields.layout and not conn.execute(queries.layout_exists(fields.layout)).first():
        raise Invalid(f"layout {fields.layout} does not exist", code="unknown_layout")
    topic = queries.topic_exists(fields.topic)
    if fields.kind == "marketing" and fields.topic and not conn.execute(topic).first():
        raise Invalid(f"topic {fields.topic} does not exist", code="unknown_topic")


def _view(row: Any) -> Template:
    return Template(**{name: row._mapping[name] for name in Template.model_fields})


def _row(conn: Connection, id_or_key: str) -> Any:
    row = conn.execute(queries.template(id_or_key)).first()
    if row is None:
        raise NotFound(f"email template {id_or_key} not found", code="template_not_found")
    return row


def create(ctx: AppContext, data: TemplateCreate, *, actor: str) -> Template:
    """A new template; ``409 template_exists`` when its key is taken, also when a concurrent request
    took it between the check and the insert (the unique key decides)."""
    html = _html(data)
    _check(data.key, data.subject, html, data.text)
    now = ctx.clock.now()
    try:
        with ctx.db.write() as conn:
            _check_links(conn, data)
            if conn.execute(queries.template_id_of_key(data.key)).first():
                raise _exists(data.key)
            template_id = new_id()
            values = data.model_dump()
            values.update(id=template_id, html=html, created_at=now, updated_at=now, revision=1)
            conn.execute(queries.TEMPLATE_INSERT, values)
            audit.record(
                conn,
                ctx.clock,
                actor=actor,
                action="template.created",
                entity_type="email_template",
                entity_id=template_id,
            )
            return _view(_row(conn, template_id))
    except sa_exc.IntegrityError:
        with ctx.db.read() as conn:
            if conn.execute(queries.template_id_of_key(data.key)).first():
                raise _exists(data.key) from None
        raise


def _exists(key: str) -> Conflict:
    return Conflict(f"an email template with key {key} exists", code="template_exists")


def update(ctx: AppContext, id_or_key: str, data: TemplateFields, *, actor: str) -> Template:
    with ctx.db.write() as conn:
        row = _row(conn, id_or_key)
        html = _html(data)
        _check(row.key, data.subject, html, data.text)
        _check_links(conn, data)
        values = data.model_dump()
        values.update(html=html, updated_at=ctx.clock.now(), revision=row.revision + 1)
        conn.execute(queries.update_template(row.id, values))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="template.updated",
            entity_type="email_template",
            entity_id=row.id,
        )
        return _view(_row(conn, row.id))


def get(ctx: AppContext, id_or_key: str) -> Template:
    with ctx.db.read() as conn:
        return _view(_row(conn, id_or_key))


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[Template]:
    query = queries.templates_page(after, limit)
    with ctx.db.read() as conn:
        return [_view(row) for row in conn.execute(query)]


def delete(ctx: AppContext, id_or_key: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        row = _row(conn, id_or_key)
        conn.execute(queries.delete_template(row.id))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="template.deleted",
            entity_type="email_template",
            entity_id=row.id,
        )


def save_layout(conn: Connection, ctx: AppContext, data: LayoutFields, *, replace: bool = True) -> None:
    """Create or (with ``replace``) overwrite a layout, which must place ``{{ content }}``."""
    if "content" not in data.html:
        raise Invalid("a layout places the message with {{ content }}", code="invalid_layout")
    _check(data.key, "layout", data.html, data.text)
    now = ctx.clock.now()
    values = {"id": new_id(), "created_at": now, "updated_at": now, **data.model_dump()}
    conn.execute(queries.save_layout(conn.dialect.name, values, replace=replace))


def save_topic(conn: Connection, ctx: AppContext, topic: Topic) -> None:
    conn.execute(queries.save_topic(conn.dialect.name, {"created_at": ctx.clock.now(), **topic.model_dump()}))


def topics(conn: Connection) -> list[Topic]:
    rows = conn.execute(queries.ALL_TOPICS)
    return [
        Topic(key=r.key, name=r.name, description=r.description, default_subscribed=r.default_subscribed)
        for r in rows
    ]


class Layout(BaseModel):
    id: str
    key: str
    name: str
    html: str
    text: str | None
    revision: int
    updated_at: datetime


def _layout_view(row: Any) -> Layout:
    return Layout(**{name: row._mapping[name] for name in Layout.model_fields})


def layouts(ctx: AppContext) -> list[Layout]:
    """The layouts by key (the first 500)."""
    with ctx.db.read() as conn:
        return [_layout_view(row) for row in conn.execute(queries.LAYOUTS_BY_KEY)]


def get_layout(ctx: AppContext, key: str) -> Layout:
    with ctx.db.read() as conn:
        row = conn.execute(queries.layout(key)).first()
    if row is None:
        raise NotFound(f"email layout {key} not found", code="layout_not_found")
    return _layout_view(row)


def save_layout_as(ctx: AppContext, data: LayoutFields, *, actor: str) -> Layout:
    """Create or replace a layout (:func:`save_layout`), audited as ``actor``."""
    with ctx.db.write() as conn:
        save_layout(conn, ctx, data)
        row = conn.execute(queries.layout(data.key)).one()
        audit.record(
            conn, ctx.clock, actor=actor, action="layout.saved", entity_type="email_layout", entity_id=row.id
        )
        return _layout_view(row)


def draft_source(key: str, revision: int, data: TemplateFields) -> render.Source:
    """What the renderer takes of a template's fields not saved yet (MJML compiled), checked as saving
    checks them: a draft that could not be saved cannot be previewed either (422)."""
    html = _html(data)
    _check(key, data.subject, html, data.text)
    return render.Source(key=key, revision=revision, subject=data.subject, html=html, text=data.text)
