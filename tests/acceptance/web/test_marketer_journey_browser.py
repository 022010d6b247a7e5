"""Issue 15's "done when", in a real browser (Debian's Chromium, driven by Playwright): a marketer who has
never seen the API runs the welcome series and reads its results from the console alone.

leadflow is served by uvicorn in this process **with its worker** (event processor, journey executor,
email deliverer) and an SMTP server set: a real one (aiosmtpd, tests/peers/smtp.py), so every email is
really delivered. The admin sets a password through the first start's link and invites a marketer; the
invitation arrives by email and the marketer sets their password from it. From then on the marketer
uses only console pages: creates the welcome series from the shipped template and publishes it. The
test plays only the outside world — two people sign up (Segment ``identify`` + ``track`` with the first
start's write key), one of them opens the welcome email and clicks a link in it (fetching the tracking
URLs found in the delivered email, with a browser's User-Agent and minutes after the send, so it is a
human hit) — and runs the worker's minutely rollup task at once instead of waiting a minute. The
marketer then reads the journey's step counts, the email report (sent, opened, clicked, who opened) and
the dashboard, each number checked against the database.

The server's clock is a :class:`VirtualClock` (started now) so the open can come "ten minutes" after
the send without waiting; the worker reads time from it like everything else.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Page

from leadflow.analytics import service as analytics
from leadflow.contacts.models import contacts
from leadflow.journeys.models import journey_runs, journey_steps
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.models import messages
from leadflow.runtime import bootstrap
from leadflow.web import service as web
from tests.peers.smtp import Received, SmtpPeer
from tests.support.console_browser import (
    DESKTOP,
    Watch,
    chromium,
    first_start_link,
    live_console,
    need_chromium,
    set_password_and_sign_in,
)

ADMIN_PASSWORD = "a long admin secret"
MARKETER_PASSWORD = "a long marketer secret"
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)


@dataclass
class Live:
    url: str
    ctx: AppContext
    clock: VirtualClock
    peer: SmtpPeer
    banner: str
    write_key: str


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[Live]:
    need_chromium()
    clock = VirtualClock(datetime.now(UTC).replace(microsecond=0))
    with (
        SmtpPeer() as peer,
        live_console(
            sqlite_url,
            clock=clock,
            stop_timeout=15.0,
            smtp_url=peer.url,
            email_from="Course School <hello@school.example>",
            brand_name="Course School",
            brand_url="https://school.example",
            brand_address="1 Main St, Springfield",
            ingest_rate_limit=0,
            api_rate_limit=0,
        ) as console,
    ):
        keys = bootstrap.first_start(console.ctx)  # what `leadflow serve` prints on a first start
        assert keys is not None
        banner = web.first_start_banner(console.ctx)
        assert banner is not None
        console.start(run_worker=True)
        yield Live(console.url, console.ctx, clock, peer, banner, keys.write_key)


def parsed(item: Received) -> EmailMessage:
    found = message_from_bytes(item.data, policy=email_policy)
    assert isinstance(found, EmailMessage)
    return found


def part(message: EmailMessage, kind: str) -> str:
    body = message.get_body((kind,))
    assert body is not None
    text: str = body.get_content()
    return text


def mail_to(peer: SmtpPeer, address: str, count: int) -> EmailMessage:
    """The email to ``address``, once ``count`` messages in all have arrived."""
    for item in peer.wait_for(count, timeout=20):
        if item.recipients == [address]:
            return parsed(item)
    raise AssertionError(f"no email to {address}")


def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait for the worker (its own threads) to get something done."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def scalar(ctx: AppContext, query: Any) -> Any:
    with ctx.db.read() as conn:
        return conn.execute(query).scalar_one()


def text_of(page: Page, selector: str) -> str:
    return page.locator(selector).first.inner_text().strip()


def test_a_marketer_runs_the_welcome_series_and_reads_its_results_in_the_console(live: Live) -> None:
    url, ctx, peer = live.url, live.ctx, live.peer
    admin_email, first_link = first_start_link(live.banner)
    watch = Watch(home=url)

    with chromium() as browser:
        admin = watch.page(browser.new_page(viewport=DESKTOP))

        # The admin: the first start's link, then an invitation for the marketer.
        set_password_and_sign_in(admin, first_link, admin_email, ADMIN_PASSWORD)
        admin.goto(url + "/app/users")
        admin.get_by_label("Name").fill("Mia Marketer")
        admin.get_by_label("Email").fill("mia@school.example")
        admin.get_by_label("Role", exact=True).select_option("marketer")
        admin.get_by_role("button", name="Send invitation").click()
        admin.wait_for_selector("text=Invitation sent")

        # The marketer: the invitation's link (delivered by the worker), then the console only.
        invitation = mail_to(peer, "mia@school.example", 1)
        found = re.search(r'href="(https?://[^"]+/app/reset/[^"]+)"', part(invitation, "html"))
        assert found, part(invitation, "html")
        mia = watch.page(browser.new_context(viewport=DESKTOP).new_page())
        link = found.group(1).replace("&amp;", "&")
        set_password_and_sign_in(mia, link, "mia@school.example", MARKETER_PASSWORD)

        mia.get_by_role("link", name="Journeys").first.click()
        mia.get_by_label("From a ready-made journey").select_option(label="Welcome series")
        mia.get_by_role("button", name="Create from template").click()
        mia.wait_for_selector("text=Journey created")
        mia.get_by_role("button", name="Publish").click()
        mia.wait_for_selector("text=Published")
        assert text_of(mia, "[data-status]") == "active"
        journey_page = mia.url.split("?")[0]

        # The outside world: two people sign up on the website (Segment's tracking API).
        people = [("ann@example.com", "Ann"), ("bob@example.com", "Bob")]
        batch = []
        for email, name in people:
            batch.append(
                {"type": "identify", "userId": email, "traits": {"email": email, "first_name": name}}
            )
            batch.append({"type": "track", "userId": email, "event": "Signed Up"})
        answer = httpx.post(url + "/v1/batch", json={"batch": batch}, auth=(live.write_key, ""))
        assert answer.status_code == 200, answer.text

        # The worker sends each a personal welcome email with an unsubscribe link.
        welcome = mail_to(peer, "ann@example.com", 3)
        assert mail_to(peer, "bob@example.com", 3)["Subject"] == "Welcome to Course School, Bob"
        assert welcome["Subject"] == "Welcome to Course School, Ann"
        html = part(welcome, "html")
        assert "Welcome, Ann!" in html
        assert "1 Main St, Springfield" in html
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert url in str(welcome["List-Unsubscribe"]), welcome["List-Unsubscribe"]

        # Ann reads it ten minutes later and clicks the course catalogue.
        sent = sa.select(sa.func.count(messages.c.sent_at)).where(messages.c.journey_id.is_not(None))
        eventually(lambda: scalar(ctx, sent) == 2, "the deliverer to record the sends")  # after SMTP's 250
        live.clock.advance(timedelta(minutes=10))
        pixel = re.search(rf'src="({re.escape(url)}/t/o/[^"]+)"', html)
        click = re.search(rf'href="({re.escape(url)}/t/c/[^"]+)"[^>]*>course catalogue<', html)
        assert pixel
        assert click
        with httpx.Client(headers={"User-Agent": BROWSER}) as reader:
            assert reader.get(pixel.group(1)).status_code == 200
            clicked = reader.get(click.group(1), follow_redirects=False)
        assert clicked.status_code == 302
        assert clicked.headers["location"] == "https://school.example/courses"
        engaged = sa.select(sa.func.count(messages.c.opened_at) + sa.func.count(messages.c.clicked_at))
        eventually(lambda: scalar(ctx, engaged) == 2, "the open and the click to be recorded")
        live.clock.advance(timedelta(minutes=1))  # the rollups count events once they settle (10 s)

        def rolled_up() -> bool:  # the worker's minutely rollup task, now rather than within a minute
            analytics.maintain(ctx)
            figures = analytics.kpis(ctx, None, None).figures
            return figures["emails_opened"].current == figures["emails_clicked"].current == 1

        eventually(rolled_up, "the rollups to count the open and the click")

        # The marketer reads the results: the journey's steps ...
        mia.goto(journey_page)
        with ctx.db.read() as conn:
            entered: dict[str, int] = dict(
                conn.execute(
                    sa.select(
                        journey_steps.c.step_id, sa.func.count(sa.distinct(journey_steps.c.run_id))
                    ).group_by(journey_steps.c.step_id)
                ).all()
            )
            at: dict[str, int] = dict(
                conn.execute(
                    sa.select(journey_runs.c.step_id, sa.func.count())
                    .where(journey_runs.c.status == "active")
                    .group_by(journey_runs.c.step_id)
                ).all()
            )
        assert entered["send-welcome"] == 2
        assert at == {"wait-1d": 2}
        assert text_of(mia, "[data-total=entered]") == "2"
        assert text_of(mia, "[data-total=active]") == "2"
        welcome_row = '[data-step="send-welcome"]'
        assert text_of(mia, f"{welcome_row} [data-count=entered]") == str(entered["send-welcome"])
        assert text_of(mia, f"{welcome_row} [data-count=completed]") == "2"
        assert text_of(mia, '[data-step="wait-1d"] [data-count=waiting]') == str(at["wait-1d"])
        assert text_of(mia, '[data-step="send-choosing"] [data-count=entered]') == "0"

        # ... the email report of the journey, and who opened ...
        with ctx.db.read() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(messages.c.sent_at),
                    sa.func.count(messages.c.opened_at),
                    sa.func.count(messages.c.clicked_at),
                ).where(messages.c.journey_id.is_not(None))
            ).one()
            ann = conn.execute(
                sa.select(contacts.c.id).where(contacts.c.email == "ann@example.com")
            ).scalar_one()
            contacts_now = conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar_one()
        assert tuple(row) == (2, 1, 1)
        mia.get_by_role("link", name="Email", exact=True).first.click()
        mia.locator("nav.email-tabs").get_by_role("link", name="Reports", exact=True).click()
        mia.locator("main").get_by_role("link", name="Journeys", exact=True).click()
        mia.locator("[data-table=reports] a", has_text="Welcome series").first.click()
        mia.wait_for_selector("[data-table=who]")
        assert text_of(mia, ".email-figures [data-n=sent]") == str(row[0])
        assert text_of(mia, ".email-figures [data-n=opened]") == str(row[1])
        assert text_of(mia, ".email-figures [data-n=clicked]") == str(row[2])
        assert mia.locator("[data-table=who] tbody tr").count() == 1
        assert (
            mia.locator(f'[data-table=who] [data-contact="{ann}"]').inner_text().startswith("ann@example.com")
        )

        # ... and the dashboard.
        mia.get_by_role("link", name="Dashboard").first.click()
        mia.wait_for_selector("[data-kpi=contacts]")
        assert text_of(mia, "[data-kpi=contacts]") == str(contacts_now)
        assert text_of(mia, "[data-kpi=emails_sent]") == str(row[0])
        assert text_of(mia, "[data-kpi=emails_opened]") == str(row[1])
        assert text_of(mia, "[data-kpi=emails_clicked]") == str(row[2])
    assert watch.errors == []
    assert watch.outside == []
