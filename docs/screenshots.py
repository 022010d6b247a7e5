"""Screenshots of every console page for docs/console.md: ``.venv/bin/python docs/screenshots.py``.

Seeds a small, realistic installation in a scratch SQLite database (five users; forty people who signed
up over two weeks with their UTM sources, the welcome series published and run on a virtual clock, its
emails written as .eml files, some opened and clicked; leads with owners and statuses, deals on the
pipeline board, a segment, a form, an API key), serves it with uvicorn, signs in as the admin in Debian's
Chromium (Playwright) and saves a PNG of each page at 1,280 px wide (full page, cut at 1,100 px) and one
at phone width into ``docs/screenshots/``. Nothing leaves the machine: no worker runs, and the browser
may only reach the server.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn
from playwright.sync_api import Page, Route, sync_playwright

from leadflow.analytics import service as analytics
from leadflow.api.app import create_app
from leadflow.auth import service as auth
from leadflow.capture import service as capture
from leadflow.contacts.models import contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import deals
from leadflow.crm import service as crm
from leadflow.events import ingest, schemas
from leadflow.journeys import executor, installer
from leadflow.journeys import service as journeys
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.migrate import upgrade
from leadflow.kernel.settings import Settings
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.file import FileTransport
from leadflow.messaging.feedback import tracking
from leadflow.messaging.models import messages
from leadflow.runtime.context import build_context
from leadflow.segments import service as segments
from leadflow.segments.schemas import SegmentCreate
from leadflow.web import service as web

OUT = Path(__file__).parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PASSWORD = "a long admin secret"
ACTOR = "system:screenshots"
WIDTH, PHONE, MAX_HEIGHT = 1280, 375, 1100
BROWSER_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15"
FIRST = ("Ann", "Bob", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jamal")
LAST = ("Lee", "Novak", "Okafor", "Silva", "Berg", "Kaur", "Moreau", "Tanaka")
JOBS = ("Data analyst", "Teacher", "Project manager", "Nurse", "Developer")
SOURCES = (
    ("google", "cpc", "spring-courses"),
    ("newsletter", "email", "march-digest"),
    ("linkedin", "social", "career-change"),
    ("", "", ""),
)


def seed(ctx: AppContext, clock: VirtualClock, outbox: Path) -> dict[str, str]:
    """The data the pages show; returns the ids the detail pages need."""
    users = {
        role: crm.create_user(
            ctx,
            crm.UserCreate(name=name, email=f"{name.split()[0].lower()}@school.example", role=role),
            actor=ACTOR,
        )
        for role, name in (
            ("admin", "Alex Admin"),
            ("marketer", "Mia Marketer"),
            ("sales", "Sam Seller"),
            ("viewer", "Vic Viewer"),
        )
    }
    other_seller = crm.create_user(
        ctx, crm.UserCreate(name="Tess Trader", email="tess@school.example", role="sales"), actor=ACTOR
    )
    web.set_password(ctx, users["admin"].id, PASSWORD, actor=ACTOR)
    installer.install(ctx, "welcome-series", actor=ACTOR, publish=True)
    installer.install(ctx, "course-nurture", actor=ACTOR, publish=False)
    segments.create(
        ctx,
        SegmentCreate(
            name="Engaged newcomers",
            description="Signed up in the last 30 days and opened an email",
            rules={
                "all": [
                    {"event": "Signed Up", "within": "30d"},
                    {"email": "opened", "within": "30d"},
                ]
            },
        ),
        actor=ACTOR,
    )
    capture.create(
        ctx,
        capture.FormFields.model_validate(
            {
                "name": "Course guide download",
                "fields": [
                    {"name": "email", "label": "Email", "type": "email", "required": True},
                    {"name": "first_name", "label": "First name"},
                ],
                "consent": {"text": "Send me the guide and occasional course news"},
            }
        ),
        actor=ACTOR,
    )
    with ctx.db.write() as conn:
        auth.create_key(conn, ctx.clock, name="Website tracking", scopes=["ingest"], actor=ACTOR)
    deliverer = Deliverer(ctx, FileTransport(outbox))
    n = 0
    for day in range(14):
        batch: list[dict[str, Any]] = []
        for _ in range(2 + day % 3):
            first, last = FIRST[n % len(FIRST)], LAST[n % len(LAST)]
            email = f"{first.lower().replace('é', 'e')}.{last.lower()}{n}@example.com"
            source, medium, campaign = SOURCES[n % len(SOURCES)]
            context = {"campaign": {"source": source, "medium": medium, "name": campaign}} if source else {}
            traits = {
                "email": email,
                "first_name": first,
                "last_name": last,
                "job_title": JOBS[n % len(JOBS)],
            }
            batch.append({"type": "identify", "userId": email, "traits": traits, "context": context})
            batch.append({"type": "page", "userId": email, "name": "Courses", "context": context})
            batch.append({"type": "track", "userId": email, "event": "Signed Up", "context": context})
            if n % 5 == 0:
                batch.append(
                    {
                        "type": "track",
                        "userId": email,
                        "event": "Order Completed",
                        "properties": {"revenue": 290},
                    }
                )
            n += 1
        ingest.store(ctx.db, ctx.signals, ctx.metrics, schemas.batch_rows({"batch": batch}, clock.now()))
        for _ in range(4):
            clock.advance(timedelta(hours=6))
            settle(ctx)
            deliverer.deliver_due()
        engage(ctx, clock)
    deliverer.close()
    settle(ctx)
    clock.advance(timedelta(minutes=2))
    analytics.maintain(ctx)
    with ctx.db.read() as conn:
        people = [r.email for r in conn.execute(sa.select(contacts.c.email).order_by(contacts.c.id))]
    crm.ensure_default_pipeline(ctx)
    default = next(p for p in crm.list_pipelines(ctx) if p.is_default)
    titles = (
        "Data course bundle",
        "Team licence (10 seats)",
        "1:1 coaching",
        "Career track",
        "Evening class",
    )
    for index, email in enumerate(people[:16]):
        owner = users["sales"].id if index % 2 else other_seller.id
        crm.assign_lead(ctx, email, crm.LeadOwnerChange(owner_id=owner), actor=ACTOR)
        if index % 3 == 0:
            crm.change_lead_status(ctx, email, crm.LeadStatusChange(status="qualified"), actor=ACTOR)
        elif index % 3 == 1:
            crm.change_lead_status(ctx, email, crm.LeadStatusChange(status="contacted"), actor=ACTOR)
        if index < 10:
            deal = deals.create(
                ctx,
                deals.DealCreate(
                    title=titles[index % len(titles)],
                    value=Decimal(490 + 350 * index),
                    currency="EUR",
                    owner_id=owner,
                    email=email,
                ),
                actor=ACTOR,
            )
            stage = default.stages[min(index % 4, len(default.stages) - 1)]
            if stage.kind == "open" and stage.id != deal.stage_id:
                crm.update_deal(ctx, deal.id, crm.DealFields(stage=stage.id), actor=ACTOR)
    return {"lead": people[1]}


def settle(ctx: AppContext) -> None:
    processor = EventProcessor(ctx)
    for _ in range(100):
        worked = 0
        while processor.process_next():
            worked += 1
        while executor.run_due(ctx):
            worked += 1
        if not worked:
            return


def engage(ctx: AppContext, clock: VirtualClock) -> None:
    """About half the day's emails are opened, a fifth clicked, a few fetched by a scanner."""
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.select(messages.c.id).where(messages.c.sent_at.is_not(None), messages.c.opens == 0)
        ).all()
    for index, row in enumerate(rows):
        if index % 2 == 0:
            tracking.record_open(ctx, row.id, user_agent=BROWSER_UA, ip="203.0.113.7")
        if index % 5 == 0:
            tracking.record_click(
                ctx, row.id, "https://school.example/courses", user_agent=BROWSER_UA, ip="203.0.113.7"
            )
        if index % 7 == 3:
            tracking.record_open(ctx, row.id, user_agent="Mozilla/5.0", ip="17.58.0.1")
    clock.advance(timedelta(minutes=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        run(Path(scratch), args.out)


def run(scratch: Path, out: Path) -> None:
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=14)
    clock = VirtualClock(start)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=f"sqlite:///{scratch / 'leadflow.db'}",
        secret_key="screenshots",
        base_url=url,
        email_from="Course School <hello@school.example>",
        brand_name="Course School",
        brand_url="https://school.example",
        brand_address="1 Main St, Springfield",
        email_outbox_dir=str(scratch / "outbox"),
        ingest_rate_limit=0,
        api_rate_limit=0,
    )
    ctx = build_context(settings, clock=clock)
    upgrade(ctx.db)
    ids = seed(ctx, clock, scratch / "outbox")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, run_worker=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    try:
        shoot(url, ctx, ids, out)
    finally:
        server.should_exit = True
        thread.join(10)
        ctx.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pages(ctx: AppContext, ids: dict[str, str]) -> list[tuple[str, str]]:
    journey = journeys.get(ctx, "welcome-series").id
    with ctx.db.read() as conn:
        contact = conn.execute(sa.select(contacts.c.id).order_by(contacts.c.id).limit(1)).scalar_one()
    segment = segments.listing(ctx, after=None, limit=1)[0].id
    return [
        ("dashboard", "/app/"),
        ("contacts", "/app/contacts"),
        ("contact", f"/app/contacts/{contact}"),
        ("segments", "/app/segments"),
        ("segment-editor", f"/app/segments/{segment}"),
        ("segment-members", f"/app/segments/{segment}/members"),
        ("journeys", "/app/journeys"),
        ("journey", f"/app/journeys/{journey}"),
        ("journey-editor", f"/app/journeys/{journey}/edit"),
        ("journey-simulator", f"/app/journeys/{journey}/simulate"),
        ("email", "/app/email"),
        ("email-template", f"/app/email/templates/welcome-1?contact={ids['lead']}"),
        ("email-broadcasts", "/app/email/broadcasts"),
        ("email-reports", "/app/email/reports?by=step"),
        ("email-report", f"/app/email/reports/journey/{journey}"),
        ("crm-leads", "/app/crm/leads"),
        ("crm-lead", f"/app/crm/leads/{ids['lead']}"),
        ("crm-board", "/app/crm/board"),
        ("integrations", "/app/integrations"),
        ("integrations-webhooks", "/app/integrations/webhooks"),
        ("integrations-connectors", "/app/integrations/connectors"),
        ("integrations-forms", "/app/integrations/forms"),
        ("integrations-keys", "/app/integrations/keys"),
        ("reports", "/app/reports"),
        ("reports-digests", "/app/reports/digests"),
        ("reports-alerts", "/app/reports/alerts"),
        ("users", "/app/users"),
        ("account", "/app/account"),
    ]


def shoot(url: str, ctx: AppContext, ids: dict[str, str], out: Path) -> None:
    def route(request: Route) -> None:
        if request.request.url.startswith(url):
            request.continue_()
        else:
            request.abort()

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.route("**/*", route)
            page.goto(url + "/app/login")
            save(page, out / "login.png")
            page.get_by_label("Email").fill("alex@school.example")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("h1")
            for name, path in pages(ctx, ids):
                answer = page.goto(url + path)
                status = answer.status if answer else 0
                if status != 200:
                    print(f"{path}: {status}", file=sys.stderr)
                    continue
                save(page, out / f"{name}.png")
            page.set_viewport_size({"width": PHONE, "height": 800})
            page.goto(url + "/app/")
            save(page, out / "phone-dashboard.png")
        finally:
            browser.close()


def save(page: Page, path: Path) -> None:
    """The whole page, cut at :data:`MAX_HEIGHT` (a long list needs no more to be understood)."""
    width, height = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    page.screenshot(
        path=str(path),
        full_page=True,
        clip={"x": 0, "y": 0, "width": width, "height": min(height, MAX_HEIGHT)},
    )
    print(f"{path.name}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
