"""First start: an admin key and a write key, created once and shown once."""

from __future__ import annotations

from dataclasses import dataclass

from leadflow.auth import service as keys
from leadflow.kernel import instance
from leadflow.kernel.context import AppContext

ACTOR = "system:first-start"


@dataclass(frozen=True)
class FirstStartKeys:
    admin_key: str
    write_key: str


def first_start(ctx: AppContext) -> FirstStartKeys | None:
    """Create the two keys if this installation has never started and has no keys yet."""
    with ctx.db.write() as conn:
        if not instance.claim(conn, "first_start_at", ctx.clock.now().isoformat()):
            return None
        if keys.count_keys(conn):
            return None
        _, admin = keys.create_key(conn, ctx.clock, name="admin (first start)", scopes=["admin"], actor=ACTOR)
        _, write = keys.create_key(
            conn, ctx.clock, name="write key (first start)", scopes=["ingest"], actor=ACTOR
        )
    return FirstStartKeys(admin_key=admin, write_key=write)


def banner(found: FirstStartKeys, public_url: str) -> str:
    return "\n".join(
        [
            "",
            "leadflow: first start. These keys are shown once; store them now.",
            f"  admin key (REST API, all scopes): {found.admin_key}",
            f"  write key (Segment tracking API): {found.write_key}",
            "",
            "Send a first event:",
            f"  curl -s {public_url}/v1/track -u '{found.write_key}:' -H 'Content-Type: application/json' \\",
            '    -d \'{"userId": "user-1", "event": "Signed Up", "properties": {"plan": "pro"}}\'',
            "Then look at the contact:",
            f"  curl -s {public_url}/api/v1/contacts -H 'Authorization: Bearer {found.admin_key}'",
            "",
        ]
    )
