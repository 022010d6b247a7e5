"""The Salesforce peer as the real client meets it: simple-salesforce over TLS, upsert by external id (and the
300 of several matches), sObject Collections, SOQL pulls, the usage header and limit, errors in
Salesforce's shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from leadflow.kernel.clock import VirtualClock
from tests.peers.salesforce import SalesforcePeer
from tests.peers.salesforce_soql import SoqlError, parse

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture(scope="module")
def running(clock: VirtualClock) -> Iterator[SalesforcePeer]:
    with SalesforcePeer(seed=1, clock=clock.monotonic, now=clock.now) as peer:
        yield peer


@pytest.fixture
def peer(running: SalesforcePeer, clock: VirtualClock) -> Iterator[SalesforcePeer]:
    running.reset()
    running.faults.clear()
    clock.set(START)
    yield running
    running.faults.clear()


@pytest.fixture
def sf(peer: SalesforcePeer) -> Iterator[Salesforce]:
    client = peer.client()
    yield client
    client.session.close()


def collection(sf: Salesforce, records: list[dict[str, Any]], *, all_or_none: bool = False) -> Any:
    body = {"allOrNone": all_or_none, "records": [{"attributes": {"type": "Lead"}, **r} for r in records]}
    return sf.restful("composite/sobjects/Lead/Email", method="PATCH", json=body)


def test_upsert_by_external_id_creates_then_updates_the_same_record(
    peer: SalesforcePeer, sf: Salesforce, clock: VirtualClock
) -> None:
    created = sf.Lead.upsert(
        "Email/ann@example.com", {"LastName": "Lee", "Company": "Acme"}, raw_response=True
    )
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True
    assert body["created"] is True
    assert body["errors"] == []
    assert body["id"].startswith("00Q")
    assert created.url.startswith("https://127.0.0.1:")
    clock.advance(timedelta(minutes=5))
    updated = sf.Lead.upsert("Email/ANN@example.com", {"FirstName": "Ann"}, raw_response=True)
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    assert peer.count("Lead") == 1
    lead = sf.Lead.get(body["id"])
    assert (lead["Name"], lead["Email"], lead["Company"]) == ("Ann Lee", "ann@example.com", "Acme")
    assert lead["CreatedDate"] == "2026-03-02T09:00:00.000+0000"
    assert lead["LastModifiedDate"] == lead["SystemModstamp"] == "2026-03-02T09:05:00.000+0000"
    assert lead["attributes"] == {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{body['id']}"}
    assert updated.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 1
    assert sf.api_usage["api-usage"].used == 4  # parsed from Sforce-Limit-Info
    assert sf.api_usage["api-usage"].total == 100_000


def test_an_older_api_version_answers_an_update_with_204(peer: SalesforcePeer) -> None:
    old = peer.client(version="42.0")
    assert old.Contact.upsert("Email/bo@example.com", {"LastName": "Bo"}) == 201
    assert old.Contact.upsert("Email/bo@example.com", {"LastName": "Bo"}) == 204


def test_several_matches_answer_300_with_their_urls_and_write_nothing(
    peer: SalesforcePeer, sf: Salesforce
) -> None:
    first = peer.seed("Lead", Email="dup@example.com", LastName="One", Company="A")
    second = peer.seed("Lead", Email="dup@example.com", LastName="Two", Company="B")
    with pytest.raises(SalesforceMoreThanOneRecord) as raised:
        sf.Lead.upsert("Email/dup@example.com", {"LastName": "Three", "Company": "C"})
    assert raised.value.status == 300
    assert raised.value.content == [
        f"/services/data/v59.0/sobjects/Lead/{first}",
        f"/services/data/v59.0/sobjects/Lead/{second}",
    ]
    assert sorted(lead["LastName"] for lead in peer.find("Lead", Email="dup@example.com")) == ["One", "Two"]
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Lead.get_by_custom_id("Email", "dup@example.com")


def test_unknown_external_id_field_update_only_and_bad_fields_answer_salesforces_errors(
    peer: SalesforcePeer, sf: Salesforce
) -> None:
    with pytest.raises(SalesforceResourceNotFound) as raised:
        sf.Lead.upsert("Nope__c/1", {"LastName": "X", "Company": "Y"})
    assert raised.value.content == [
        {
            "message": "Provided external ID field does not exist or is not accessible: Nope__c",
            "errorCode": "NOT_FOUND",
        }
    ]
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful(
            "sobjects/Lead/Email/new@example.com",
            params={"updateOnly": "true"},
            method="PATCH",
            json={"LastName": "X", "Company": "Y"},
        )
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Lead.upsert("Email/new@example.com", {"LastName": "X"})
    assert missing.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert missing.value.content[0]["fields"] == ["Company"]
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.Lead.upsert("Email/new@example.com", {"LastName": "X", "Company": "Y", "Shoe": 42})
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as read_only:
        sf.Lead.upsert("Email/new@example.com", {"LastName": "X", "Company": "Y", "Name": "X"})
    assert read_only.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as in_body:
        sf.Lead.upsert("Email/new@example.com", {"LastName": "X", "Company": "Y", "Email": "new@example.com"})
    assert in_body.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as bad_email:
        sf.Lead.upsert("Email/not-an-email", {"LastName": "X", "Company": "Y"})
    assert bad_email.value.content[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert sf.Lead.upsert("Leadflow_Id__c/c-1", {"LastName": "X", "Company": "Y", "Shoe_Size__c": 42}) == 201
    assert peer.count("Lead") == 1


def test_collections_upsert_answers_one_result_per_record_in_order(
    peer: SalesforcePeer, sf: Salesforce
) -> None:
    existing = peer.seed("Lead", Email="old@example.com", LastName="Old", Company="A")
    peer.seed("Lead", Email="twice@example.com", LastName="T1", Company="A")
    peer.seed("Lead", Email="twice@example.com", LastName="T2", Company="A")
    results = collection(
        sf,
        [
            {"Email": "old@example.com", "Title": "CEO"},
            {"Email": "new@example.com", "LastName": "New", "Company": "B"},
            {"Email": "nocompany@example.com", "LastName": "New"},
            {"Email": "twice@example.com", "Title": "CTO"},
            {"Email": "same@example.com", "LastName": "S", "Company": "C"},
            {"Email": "SAME@example.com", "LastName": "S", "Company": "C"},
        ],
    )
    assert results[0] == {"id": existing, "success": True, "errors": [], "created": False}
    assert results[1]["success"] is True
    assert results[1]["created"] is True
    codes = [r["errors"][0]["statusCode"] for r in results[2:]]
    assert codes == ["REQUIRED_FIELD_MISSING", "DUPLICATE_EXTERNAL_ID", "DUPLICATE_VALUE", "DUPLICATE_VALUE"]
    assert "more than one record found for external id field" in results[3]["errors"][0]["message"]
    assert peer.get("Lead", existing)["Title"] == "CEO"  # type: ignore[index]
    assert peer.count("Lead") == 4
    assert peer.count("Lead", Title="CTO") == 0


def test_collections_all_or_none_writes_nothing_when_one_fails(peer: SalesforcePeer, sf: Salesforce) -> None:
    results = collection(
        sf,
        [
            {"Email": "a@example.com", "LastName": "A", "Company": "X"},
            {"Email": "b@example.com", "LastName": "B"},
        ],
        all_or_none=True,
    )
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert peer.count("Lead") == 0


def test_collections_refuse_more_than_200_records(peer: SalesforcePeer, sf: Salesforce) -> None:
    records = [{"Email": f"n{i}@example.com", "LastName": "N", "Company": "X"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as raised:
        collection(sf, records)
    assert raised.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert peer.count("Lead") == 0
    assert all(r["success"] for r in collection(sf, records[:200]))
    assert peer.count("Lead") == 200


def test_records_by_id_and_tasks_with_checked_references(peer: SalesforcePeer, sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}  # describe, not a record id "describe"
    assert fields["Email"]["idLookup"] is True
    assert fields["Leadflow_Id__c"]["externalId"] is True
    account = sf.Account.create({"Name": "Acme"})["id"]
    contact = sf.Contact.create({"LastName": "Cy", "Email": "cy@example.com", "AccountId": account})["id"]
    assert sf.Contact.update(contact, {"Email": "cy.new@example.com"}) == 204
    assert peer.count("Contact", Email="cy.new@example.com") == 1
    opportunity = sf.Opportunity.create(
        {
            "Name": "Deal",
            "AccountId": account,
            "StageName": "Closed Won",
            "CloseDate": "2026-03-31",
            "Amount": 10,
        }
    )["id"]
    assert sf.Opportunity.get(opportunity)["IsWon"] is True
    task = sf.Task.create({"Subject": "Call", "WhoId": contact, "WhatId": opportunity, "Status": "Completed"})
    assert task["success"] is True
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Task.create({"Subject": "Call", "WhoId": "00Q000000000000AAA"})
    assert raised.value.content[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert sf.Contact.delete(contact) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(contact)
    assert peer.count("Contact") == 0
    assert peer.count("Task") == 1


def test_soql_pulls_remote_changes_since_a_time_and_finds_by_email(
    peer: SalesforcePeer, sf: Salesforce, clock: VirtualClock
) -> None:
    ids = [peer.seed("Lead", Email=f"p{i}@example.com", LastName=f"P{i}", Company="X") for i in range(5)]
    clock.advance(timedelta(hours=1))
    since = clock.now()
    clock.advance(timedelta(seconds=1))
    peer.remote_update("Lead", ids[1], Title="VP")
    peer.remote_update("Lead", ids[3], Title="CFO")
    iso = since.isoformat().replace("+00:00", "Z")
    changed = sf.query(
        f"SELECT Id, Title, LastModifiedDate FROM Lead WHERE LastModifiedDate > {iso}"
        " ORDER BY LastModifiedDate, Id"
    )
    assert changed["totalSize"] == 2
    assert [(r["Id"], r["Title"]) for r in changed["records"]] == [(ids[1], "VP"), (ids[3], "CFO")]
    assert changed["records"][0]["LastModifiedDate"] == "2026-03-02T10:00:01.000+0000"
    by_email = sf.query("SELECT Id, Email FROM Lead WHERE Email = 'P2@EXAMPLE.COM'")
    assert [r["Id"] for r in by_email["records"]] == [ids[2]]
    peer.page_size = 2
    try:
        everything = sf.query_all(
            "SELECT Id FROM Lead WHERE Email LIKE 'p%' AND (Title = null OR Title IN ('VP'))"
        )
    finally:
        peer.page_size = 2000
    assert sorted(r["Id"] for r in everything["records"]) == sorted([ids[0], ids[1], ids[2], ids[4]])
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id, Shoe FROM Lead")
    assert raised.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_soql_parser_handles_what_a_pull_sends() -> None:
    record = {
        "Email": "a@b.c",
        "LastModifiedDate": "2026-01-02T00:00:00.000+0000",
        "Amount": 5,
        "Title": None,
    }
    assert parse("SELECT Id FROM Lead WHERE LastModifiedDate >= 2026-01-02T00:00:00Z").where(record)
    assert not parse("SELECT Id FROM Lead WHERE LastModifiedDate > 2026-01-02T00:00:00.000+0000").where(
        record
    )
    assert parse("SELECT Id FROM Lead WHERE NOT Amount < 5 AND Title = null").where(record)
    assert parse("SELECT Id FROM Lead WHERE Email NOT IN ('x@y.z') AND CreatedDate = null").where(record)
    assert parse("SELECT COUNT() FROM Lead").count
    with pytest.raises(SoqlError):
        parse("SELECT FROM Lead")
    with pytest.raises(SoqlError):
        parse("SELECT Id FROM Lead WHERE Email = 'a' LIMIT x")


def test_usage_header_on_every_answer_and_the_daily_limit(peer: SalesforcePeer, sf: Salesforce) -> None:
    peer.daily_limit = 3
    try:
        sf.query("SELECT Id FROM Lead")
        sf.query("SELECT Id FROM Lead")
        assert (sf.api_usage["api-usage"].used, sf.api_usage["api-usage"].total) == (2, 3)
        sf.query("SELECT Id FROM Lead")
        with pytest.raises(SalesforceRefusedRequest) as raised:
            sf.query("SELECT Id FROM Lead")
        assert raised.value.status == 403
        assert raised.value.content == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        refused = peer.calls[-1]
        assert refused.status == 403
    finally:
        peer.daily_limit = 100_000


def test_a_bad_session_is_refused_with_invalid_session_id(peer: SalesforcePeer) -> None:
    stranger = peer.client(session_id="00Dforged")
    with pytest.raises(SalesforceExpiredSession) as raised:
        stranger.query("SELECT Id FROM Lead")
    assert raised.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert peer.api_used == 0


def test_injected_faults_take_salesforces_shapes(peer: SalesforcePeer, sf: Salesforce) -> None:
    peer.faults.burst_429(1)
    with pytest.raises(SalesforceRefusedRequest) as limited:
        sf.query("SELECT Id FROM Lead")
    assert limited.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert "Concurrent" in limited.value.content[0]["message"]
    peer.faults.error_rate = 1.0
    with pytest.raises(SalesforceGeneralError) as failed:
        sf.query("SELECT Id FROM Lead")
    assert failed.value.status in (500, 503)
    assert failed.value.content[0]["errorCode"] in ("UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE")


def test_an_email_changed_by_id_is_found_under_the_new_email_only(
    peer: SalesforcePeer, sf: Salesforce
) -> None:
    lead = sf.Lead.upsert(
        "Email/old@example.com", {"LastName": "O", "Company": "X"}, raw_response=True
    ).json()["id"]
    assert sf.Lead.update(lead, {"Email": "new@example.com"}) == 204
    assert sf.Lead.upsert("Email/new@example.com", {"Title": "CEO"}) == 200
    assert sf.Lead.get_by_custom_id("Email", "new@example.com")["Id"] == lead
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get_by_custom_id("Email", "old@example.com")
    peer.remote_update("Lead", lead, Email="sales@example.com")
    assert sf.Lead.get_by_custom_id("Email", "sales@example.com")["Title"] == "CEO"
    assert peer.count("Lead") == 1
