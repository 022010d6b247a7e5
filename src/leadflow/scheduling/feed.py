"""Consultants' ICS feeds: read (an http(s) URL through the outgoing-request guard, or a file path),
expanded over the booking horizon (:mod:`.ics`), and written as the consultant's busy times — the
whole set replaced in one transaction, so a slot check never sees half a feed.

The worker refreshes every feed older than ``REFRESH_EVERY`` (a scheduler task); a feed that cannot be
read or parsed keeps its previous busy times and records the error on the profile.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from leadflow.kernel import netguard
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.scheduling import ics, profiles, queries
from leadflow.scheduling.schemas import zone_of

REFRESH_EVERY = timedelta(minutes=15)
TIMEOUT = 10.0
MAX_BYTES = 5 * 1024 * 1024
MAX_ERROR = 1000


class FeedError(Exception):
    """The feed could not be read."""


def fetch(ctx: AppContext, location: str) -> bytes:
    if location.startswith(("http://", "https://")):
        try:
            with netguard.client(ctx.settings, timeout=TIMEOUT, follow_redirects=True) as client:
                answer = client.get(location)
        except httpx.HTTPError as exc:
            raise FeedError(f"{type(exc).__name__}: {exc}") from None
        if answer.status_code != 200:
            raise FeedError(f"the feed answered {answer.status_code}")
        if len(answer.content) > MAX_BYTES:
            raise FeedError("the feed is larger than 5 MB")
        return answer.content
    try:
        return Path(location.removeprefix("file://")).read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise FeedError(f"cannot read {location}: {exc.strerror}") from None


def refresh_one(ctx: AppContext, profile: Any, timezone: str) -> int:
    """Replace this consultant's busy times by their feed's; answers how many were written."""
    now = ctx.clock.now()
    try:
        data = fetch(ctx, profile.ics_url)
        busy = ics.busy_times(
            data, zone_of(timezone), now - timedelta(days=1), now + timedelta(days=profile.horizon_days + 1)
        )
    except (FeedError, Invalid) as exc:
        with ctx.db.write() as conn:
            conn.execute(
                queries.FEED_DONE, {"consultant": profile.user_id, "at": now, "error": str(exc)[:MAX_ERROR]}
            )
        return 0
    rows = [
        {"user_id": profile.user_id, "starts_at": start, "ends_at": end, "summary": summary}
        for (start, end), summary in busy
    ]
    with ctx.db.write() as conn:
        conn.execute(queries.BUSY_CLEAR, {"user_id": profile.user_id})
        if rows:
            conn.execute(queries.BUSY_INSERT, rows)
        conn.execute(queries.FEED_DONE, {"consultant": profile.user_id, "at": now, "error": None})
    return len(rows)


def refresh_due(ctx: AppContext, *, force: bool = False) -> int:
    """Refresh every feed not refreshed for ``REFRESH_EVERY`` (all with ``force``); answers how many."""
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        due = [
            (profile, user.timezone)
            for profile, user in profiles.consultants(conn)
            if profile.ics_url is not None
            and (force or profile.ics_refreshed_at is None or now - profile.ics_refreshed_at >= REFRESH_EVERY)
        ]
    for profile, timezone in due:
        refresh_one(ctx, profile, timezone)
    return len(due)
