"""Each ready-made journey, installed from its shipped file and run in the simulator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from leadflow.journeys import installer, service, simulator
from leadflow.journeys.simulator import Simulation, SimulationRequest
from leadflow.kernel.context import AppContext

ANN = {"email": "ann@example.com", "first_name": "Ann", "timezone": "Europe/Berlin"}


def run(ctx: AppContext, name: str, script: dict[str, Any]) -> Simulation:
    installed = installer.install(ctx, name, actor="test")
    definition = service.get(ctx, installed.journey_id).definition
    return simulator.simulate(ctx, definition, SimulationRequest.model_validate({"contact": ANN, **script}))


def emails(result: Simulation) -> list[tuple[float, str]]:
    """(days after the start, subject) of every email in the timeline."""
    return [
        ((m.at - result.started_at) / timedelta(days=1), m.email.subject)
        for m in result.timeline
        if m.email is not None
    ]


def test_install_is_idempotent_and_makes_drafts(ctx: AppContext) -> None:
    first = installer.install_all(ctx, actor="test")
    again = installer.install_all(ctx, actor="test")
    assert [i.key for i in first] == list(installer.NAMES)
    assert all(i.created and i.status == "draft" for i in first)
    assert not any(i.created for i in again)
    assert [i.journey_id for i in first] == [i.journey_id for i in again]


def test_welcome_series_sends_four_emails_on_days_0_1_3_6(ctx: AppContext) -> None:
    result = run(ctx, "welcome-series", {"events": [{"event": "Signed Up"}], "horizon": "10d"})
    sent = emails(result)
    assert [round(day, 3) for day, _ in sent] == [0, 1, 3, 6]
    assert "Ann" in sent[0][1]
    first = next(m.email for m in result.timeline if m.email)
    assert first is not None
    assert first.to == "ann@example.com"
    assert "/u/" in first.html  # the layout's unsubscribe link
    assert "/u/" in first.text
    assert result.run_status == "completed"


def test_abandoned_cart_stops_when_the_order_completes(ctx: AppContext) -> None:
    cart = {
        "cart_id": "c1",
        "products": [{"name": "Python 101", "price": 49}],
        "total": 49,
        "currency": "EUR",
        "checkout_url": "https://shop.example.com/checkout/c1",
    }
    full = run(
        ctx,
        "abandoned-cart",
        {"events": [{"event": "Checkout Started", "properties": cart}], "horizon": "5d"},
    )
    assert [round(day * 24) for day, _ in emails(full)] == [1, 24, 72]
    first = next(m.email for m in full.timeline if m.email)
    assert first is not None
    assert "Python 101" in first.html
    stopped = simulator.simulate(
        ctx,
        service.get(ctx, "abandoned-cart").definition,
        SimulationRequest.model_validate(
            {
                "contact": ANN,
                "events": [
                    {"event": "Checkout Started", "properties": cart},
                    {"after": "30h", "event": "Order Completed"},
                ],
                "horizon": "5d",
            }
        ),
    )
    assert [round(day * 24) for day, _ in emails(stopped)] == [1, 24]
    assert stopped.run_status == "converted"


def test_post_purchase_onboarding_follows_the_course_for_90_days(ctx: AppContext) -> None:
    result = run(
        ctx,
        "post-purchase-onboarding",
        {
            "events": [
                {
                    "event": "Order Completed",
                    "properties": {
                        "order_id": "o1",
                        "products": [{"name": "Python 101"}],
                        "course_name": "Python 101",
                    },
                }
            ],
            "horizon": "90d",
        },
    )
    assert [round(day) for day, _ in emails(result)] == [0, 1, 7, 14, 30, 60, 90]


def test_course_nurture_takes_the_low_score_track(ctx: AppContext) -> None:
    result = run(
        ctx,
        "course-nurture",
        {
            "events": [
                {
                    "event": "Course Viewed",
                    "properties": {"course": "py", "course_name": "Python for analysts"},
                }
            ],
            "horizon": "20d",
        },
    )
    branches = [m.branch for m in result.timeline if m.type == "branch"]
    assert branches == ["else", "else"]
    sent = emails(result)
    assert len(sent) == 4
    assert "Python for analysts" in sent[0][1]


def test_re_engagement_sends_a_last_chance_without_a_click(ctx: AppContext) -> None:
    result = run(ctx, "re-engagement", {"horizon": "30d"})
    steps = [m.step for m in result.timeline if m.status == "done"]
    assert steps[:2] == ["send-miss-you", "wait-7d"]
    assert "send-last-chance" in steps
    assert len(emails(result)) == 2


def test_re_engagement_tags_a_contact_who_clicks(ctx: AppContext) -> None:
    result = run(
        ctx,
        "re-engagement",
        {"events": [{"after": "9d", "event": "leadflow.email_clicked"}], "horizon": "30d"},
    )
    steps = [m.step for m in result.timeline if m.status == "done"]
    assert "tag-re-engaged" in steps
    assert "send-last-chance" not in steps


def test_birthday_email_waits_for_nine_in_the_contacts_morning(ctx: AppContext) -> None:
    result = run(ctx, "birthday", {"horizon": "2d"})
    (sent,) = [m for m in result.timeline if m.email]
    local = sent.at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0)
    assert sent.email is not None
    assert "BDAY15" in sent.email.html


def test_score_band_nurture_sends_general_content_to_a_low_score(ctx: AppContext) -> None:
    result = run(ctx, "score-band-nurture", {"horizon": "1d"})
    assert [m.branch for m in result.timeline if m.type == "branch"] == ["else", "else", "else"]
    assert [m.step for m in result.timeline if m.email] == ["send-general"]


def test_mql_handoff_notifies_the_owner_at_once(ctx: AppContext) -> None:
    result = run(ctx, "mql-handoff", {"horizon": "3d"})
    notice = result.timeline[0]
    assert notice.type == "notify_owner"
    assert notice.at == result.started_at  # well within the 5 minutes
    assert notice.email is not None
    assert notice.email.to == "noreply@localhost"  # no owner, no LEADFLOW_SALES_EMAIL: the sender
    assert "Ann" in notice.email.subject


@pytest.mark.parametrize("name", installer.NAMES)
def test_every_template_publishes(ctx: AppContext, name: str) -> None:
    installed = installer.install(ctx, name, actor="test", publish=True)
    assert installed.status == "active"


def test_with_only_the_sender_set_the_welcome_email_speaks_for_its_brand(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only ``LEADFLOW_EMAIL_FROM`` (and the postal address) set: the brand's name comes from the
    sender's display name and its website from the sender's domain; nothing says "leadflow" or links to
    leadflow's own pages."""
    monkeypatch.setattr(ctx.settings, "email_from", "Course School <hello@school.example>")
    result = run(ctx, "welcome-series", {"events": [{"event": "Signed Up"}], "horizon": "2d"})
    first, second = [m.email for m in result.timeline if m.email is not None]
    assert first.subject == "Welcome to Course School, Ann"
    for email in (first, second):
        assert "The Course School team" in email.text
        assert "1 Main St, Springfield" in email.text  # the footer's postal address
        assert "leadflow" not in (email.subject + email.html + email.text).lower()
    assert "https://school.example/courses" in first.text
    assert "https://school.example/courses?level=beginner" in second.text
    assert ctx.settings.public_url not in first.text.replace(f"{ctx.settings.public_url}/u/", "").replace(
        f"{ctx.settings.public_url}/p/", ""
    )  # leadflow's own address only in the unsubscribe and preference links
