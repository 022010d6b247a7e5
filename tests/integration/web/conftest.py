"""Fixtures of the console's tests: users of each role with a password, and signing in."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.web import passwords
from leadflow.web import service as web

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_user(ctx: AppContext, role: str, *, password: str | None = PASSWORD) -> crm.User:
    data = crm.UserCreate.model_validate(
        {"name": f"{role.title()} User", "email": f"{role}@example.com", "role": role}
    )
    user = crm.create_user(ctx, data, actor="test")
    if password:
        web.set_password(ctx, user.id, password, actor="test")
    return user


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the CSRF token of the signed-in pages."""
    token = csrf_of(client.get("/app/login").text)
    answer = client.post(
        "/app/login", data={"email": email, "password": password, "csrf": token}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/app/account").text)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id still, with the smallest costs: the suite verifies many passwords on 2 cores."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


@pytest.fixture
def user_of(ctx: AppContext) -> Callable[..., crm.User]:
    def make(role: str, **kw: str | None) -> crm.User:
        return make_user(ctx, role, **kw)

    return make
