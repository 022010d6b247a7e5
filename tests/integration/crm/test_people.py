"""CRM users and teams: validation, uniqueness, scopes, deletion rules."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.integration.crm.conftest import user
from tests.support.http import bearer


def test_users_and_teams_are_validated_and_changed_by_admins_only(
    api: TestClient, make_key: Callable[..., str]
) -> None:
    team = api.post("/api/v1/crm/teams", json={"name": "Course sales"}).json()
    hours = {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["09:00", "13:00"]]}
    sam = user(
        api,
        "Sam",
        "Sam@Biz.example",
        team_id=team["id"],
        timezone="Europe/Berlin",
        working_hours=hours,
        capacity=2,
    )
    assert (sam["email"], sam["role"], sam["capacity"], sam["active"]) == (
        "sam@biz.example",
        "sales",
        2,
        True,
    )
    assert sam["working_hours"] == hours
    default = user(api, "Dee", "dee@biz.example")
    assert default["timezone"] == "UTC"
    assert default["working_hours"]["mon"] == [["09:00", "17:00"]]
    assert "sat" not in default["working_hours"]
    for body, status, code in (
        ({"name": "X", "email": "sam@biz.example"}, 409, "user_email_taken"),
        ({"name": "X", "email": "x@biz.example", "timezone": "CEST"}, 422, "invalid_timezone"),
        (
            {"name": "X", "email": "x@biz.example", "working_hours": {"mon": [["17:00", "09:00"]]}},
            422,
            "invalid_working_hours",
        ),
        ({"name": "X", "email": "x@biz.example", "capacity": -1}, 422, None),
        ({"name": "X", "email": "x@biz.example", "role": "owner"}, 422, None),
        ({"name": "X", "email": "not an email"}, 422, "invalid_email"),
        ({"name": "X", "email": "x@biz.example", "team_id": "nope"}, 422, "team_not_found"),
    ):
        refused = api.post("/api/v1/crm/users", json=body)
        assert refused.status_code == status, (body, refused.text)
        if code:
            assert refused.json()["error"]["code"] == code
    changed = api.patch(f"/api/v1/crm/users/{sam['id']}", json={"active": False, "role": "admin"}).json()
    assert (changed["active"], changed["role"], changed["timezone"]) == (False, "admin", "Europe/Berlin")
    assert api.patch(f"/api/v1/crm/users/{sam['id']}", json={"email": "dee@biz.example"}).status_code == 409
    assert api.patch(f"/api/v1/crm/users/{sam['id']}", json={"name": None}).status_code == 422
    assert api.patch("/api/v1/crm/users/nope", json={"name": "Y"}).status_code == 404
    listed = api.get("/api/v1/crm/users", params={"team_id": team["id"]}).json()["data"]
    assert [u["id"] for u in listed] == [sam["id"]]
    assert [u["id"] for u in api.get("/api/v1/crm/users", params={"active": False}).json()["data"]] == [
        sam["id"]
    ]

    led = api.patch(f"/api/v1/crm/teams/{team['id']}", json={"lead_user_id": sam["id"]}).json()
    assert led["lead_user_id"] == sam["id"]
    assert api.post("/api/v1/crm/teams", json={"name": "Course sales"}).status_code == 409
    assert api.patch(f"/api/v1/crm/teams/{team['id']}", json={"lead_user_id": "nope"}).status_code == 422

    reader = bearer(make_key("read"))
    assert api.get("/api/v1/crm/users", headers=reader).status_code == 200
    assert api.get(f"/api/v1/crm/teams/{team['id']}", headers=reader).status_code == 200
    assert (
        api.post("/api/v1/crm/teams", json={"name": "B"}, headers=bearer(make_key("write"))).status_code
        == 403
    )

    assert api.delete(f"/api/v1/crm/users/{sam['id']}").status_code == 204  # owns nothing
    assert api.get(f"/api/v1/crm/teams/{team['id']}").json()["lead_user_id"] is None
    assert api.patch(f"/api/v1/crm/users/{default['id']}", json={"team_id": team["id"]}).status_code == 200
    assert api.delete(f"/api/v1/crm/teams/{team['id']}").status_code == 204
    assert api.get(f"/api/v1/crm/users/{default['id']}").json()["team_id"] is None
    assert api.get(f"/api/v1/crm/teams/{team['id']}").status_code == 404
