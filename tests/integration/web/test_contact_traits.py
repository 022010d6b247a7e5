"""A contact's traits on their page: text as is, other values as JSON (not Python's ``{'name': …}`` or
``True``) — on both databases."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in
from tests.support.contacts import by_user
from tests.support.events import send


def test_traits_that_are_not_text_are_shown_as_json(
    client: TestClient, ctx: AppContext, processor: EventProcessor, user_of: Callable[..., crm.User]
) -> None:
    user_of("marketer")
    traits = {"email": "ann@example.com", "job_title": "Nurse", "vip": True, "company": {"name": "Lee & Co"}}
    send(ctx, {"type": "identify", "userId": "u1", "traits": traits})
    processor.drain()
    sign_in(client, "marketer@example.com")
    page = client.get(f"/app/contacts/{by_user(ctx, 'u1')['id']}").text
    assert 'data-trait="job_title">Nurse<' in page
    assert 'data-trait="vip">true<' in page
    assert 'data-trait="company">{&#34;name&#34;: &#34;Lee &amp; Co&#34;}<' in page
    assert "{&#39;name&#39;" not in page
