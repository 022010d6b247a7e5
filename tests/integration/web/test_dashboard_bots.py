"""The dashboard shows email bot hits (scanners, privacy proxies) apart: human opens and clicks count
only people's, the bot totals only machines', on both databases."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from fastapi.testclient import TestClient

from leadflow.analytics import service as analytics
from leadflow.crm import service as crm
from leadflow.events.models import events
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in

DAY = date(2026, 3, 2)
AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HITS = [  # (status, machine_generated)
    ("sent", False), ("sent", False), ("sent", False),
    ("opened", False), ("opened", True), ("opened", True), ("opened", True),
    ("clicked", False), ("clicked", True), ("clicked", True),
]  # fmt: skip


def _kpi(html: str, name: str) -> float:
    found = re.search(rf'data-kpi="{name}">(?:<a [^>]*>)?([^<]+)<', html)
    assert found, f"{name} not on the page"
    return float(found.group(1).replace(",", ""))


def _row(number: int, status: str, machine: bool) -> dict[str, Any]:
    return {
        "message_id": f"bot-{number}",
        "type": "track",
        "event": f"leadflow.email_{status}",
        "contact_id": f"c{number}",
        "properties": {"template_id": "t1", "message_id": f"msg{number}", "machine_generated": machine},
        "timestamp": AT,
        "received_at": AT,
        "processed_at": AT,
        "source": "internal",
    }


def test_bot_opens_and_clicks_are_shown_apart_from_people(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    with ctx.db.write() as conn:
        conn.execute(events.insert(), [_row(i, s, m) for i, (s, m) in enumerate(HITS)])
    analytics.maintain(ctx)
    user_of("admin")
    sign_in(client, "admin@example.com")
    page = client.get("/app/", params={"from": DAY.isoformat(), "to": DAY.isoformat()})
    assert page.status_code == 200, page.text
    shown = {
        name: _kpi(page.text, name) for name in ("emails_opened", "emails_clicked", "bot_opens", "bot_clicks")
    }
    assert shown == {"emails_opened": 1, "emails_clicked": 1, "bot_opens": 3, "bot_clicks": 2}
    kpis = analytics.kpis(ctx, DAY, DAY).figures
    assert (kpis["emails_opened"].current, kpis["emails_clicked"].current) == (1, 1)
