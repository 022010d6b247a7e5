"""The form's own rules without a database: cleaning a post, escaping what is rendered, the per-address
buckets on a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.capture import render, throttle
from leadflow.capture.schemas import FormFields
from leadflow.capture.submit import SubmissionInvalid, clean
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.errors import RateLimited

FORM = FormFields.model_validate(
    {
        "name": "Guide <download>",
        "fields": [
            {"name": "email", "label": "Email", "type": "email", "required": True},
            {"name": "code", "label": "Code", "pattern": "[A-Z]{3}", "max_length": 3},
            {"name": "agree", "label": "Terms", "type": "checkbox", "required": True},
            {"name": "size", "label": "Size", "type": "number"},
        ],
        "consent": {"text": "I agree <b>to</b> emails"},
    }
)


def test_clean_reports_every_error_by_field() -> None:
    with pytest.raises(SubmissionInvalid) as caught:
        clean(FORM, {"email": "x@", "code": "abcd", "size": "nan", "agree": "off"})
    assert caught.value.errors == {
        "email": "not an email address",
        "code": "at most 3 characters",
        "agree": "this box must be checked",
        "size": "not a number",
        "consent": "your consent is required",
    }
    with pytest.raises(SubmissionInvalid) as caught:
        clean(FORM, {"email": "a@b.co", "code": "abc", "agree": True, "consent": True})
    assert caught.value.errors == {"code": "not in the expected format"}


def test_clean_keeps_typed_values() -> None:
    found = clean(FORM, {"email": " a@b.co ", "code": "ABC", "agree": "on", "size": "2", "consent": "true"})
    assert found == {"email": "a@b.co", "code": "ABC", "agree": True, "size": 2}


@pytest.mark.parametrize(
    "fields",
    [
        [{"name": "email", "label": "E", "type": "email"}],  # not required
        [{"name": "mail", "label": "E", "type": "email", "required": True}],
        [{"name": "email", "label": "E", "type": "email", "required": True}, {"name": "Bad", "label": "B"}],
    ],
)
def test_definitions_need_one_required_email_field(fields: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        FormFields.model_validate({"name": "F", "fields": fields})


def test_rendering_escapes_what_staff_and_visitors_typed() -> None:
    page = render.hosted(
        FORM, "https://x.example/f/1", values={"code": '"><script>'}, errors={"code": "<bad>"}
    )
    assert "<script>" not in page.replace("<script>(function(f)", "")
    assert "&quot;&gt;&lt;script&gt;" in page
    assert "Guide &lt;download&gt;" in page
    assert "I agree &lt;b&gt;to&lt;/b&gt; emails" in page
    assert 'aria-describedby="lf-code-error"' in page


def test_buckets_per_address_refill_and_are_forgotten() -> None:
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    limiter = throttle.PerAddress(2, clock)
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(RateLimited) as caught:
        limiter.check("a")
    assert caught.value.retry_after == 30
    limiter.check("b")  # another address has its own bucket
    clock.advance(timedelta(seconds=30))
    limiter.check("a")
    clock.advance(timedelta(minutes=5))
    limiter._prune(clock.monotonic())
    assert limiter.buckets == {}
    throttle.PerAddress(0, clock).check("a")  # 0: no limit
