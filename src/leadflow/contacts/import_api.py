"""``/api/v1/imports``: upload a CSV (multipart ``file`` or a ``text/csv`` body), follow the job."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from leadflow.contacts import import_jobs
from leadflow.contacts.import_jobs import ImportIssue, ImportJob
from leadflow.contacts.importer import parse_mapping
from leadflow.kernel import inputs, pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(tags=["imports"])
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "map": {"type": "array", "items": {"type": "string"}},
                        "list_id": {"type": "string"},
                    },
                }
            },
        },
    }
}


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the file is not UTF-8 text", code="invalid_encoding") from None
    inputs.check_text(text, "the file")  # 422 invalid_text: PostgreSQL cannot store NUL
    return text


async def _upload(request: Request) -> tuple[str, str | None, list[str], str | None]:
    """(text, filename, mapping items, list id) from a multipart form or a CSV body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form() as form:  # closes the uploaded file's spool
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise Invalid("send the CSV as the form field 'file'", code="missing_file")
            text = _decode(await upload.read())
            maps = [str(v) for v in form.getlist("map")]
            list_id = form.get("list_id")
            for value in (*maps, list_id if isinstance(list_id, str) else ""):
                inputs.check_text(value, "a form field")
            return text, upload.filename, maps, list_id if isinstance(list_id, str) and list_id else None
    if kind in CSV_TYPES:
        return _decode(await request.body()), None, [], None
    raise HTTPException(415, "send the file as text/csv or as the multipart/form-data field 'file'")


@router.post(
    "/imports",
    response_model=ImportJob,
    status_code=202,
    summary="Import contacts from a CSV file; answers the queued job",
    openapi_extra=UPLOAD,
)
async def create_import(
    request: Request,
    map: list[str] = Query([], description="HEADER=FIELD, repeatable (see docs/api.md, CSV import)"),
    list_id: str | None = Query(None, description="a static list the contacts are added to"),
    filename: str | None = Query(None, max_length=255),
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> ImportJob:
    text, uploaded_name, form_maps, form_list = await _upload(request)
    mapping = parse_mapping([*map, *form_maps])
    return await run_in_threadpool(
        import_jobs.create,
        ctx,
        text,
        filename=filename or uploaded_name,
        mapping=mapping,
        list_id=list_id or form_list,
        actor=principal.actor,
    )


@router.get("/imports", response_model=Page[ImportJob], summary="Import jobs, newest first")
def list_imports(
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[ImportJob]:
    before = pagination.text_at(cursor, "before")
    found = import_jobs.listing(ctx, after=before, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda j: {"before": j.id})
    return Page[ImportJob](data=items, next_cursor=next_cursor)


@router.get(
    "/imports/{job_id}", response_model=ImportJob, summary="An import's progress, rejected rows, warnings"
)
def get_import(
    job_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> ImportJob:
    return import_jobs.get(ctx, job_id)


@router.get(
    "/imports/{job_id}/issues",
    response_model=Page[ImportIssue],
    summary="All rejected rows or warnings, by line",
)
def import_issues(
    job_id: str,
    kind: Literal["rejected", "warning"] = Query("rejected"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[ImportIssue]:
    after = pagination.number_at(cursor, "line") or 0
    found = import_jobs.issues(ctx, job_id, kind, after=after, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda i: {"line": i.line})
    return Page[ImportIssue](data=items, next_cursor=next_cursor)


@router.delete(
    "/imports/{job_id}", status_code=204, response_class=Response, summary="Delete a finished import"
)
def delete_import(
    job_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    import_jobs.delete(ctx, job_id, actor=principal.actor)
    return Response(status_code=204)
