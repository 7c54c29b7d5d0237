"""The admin API's tenant endpoints: list, search and filter in cursor pages; onboard; detail; suspend and
resume (the bot stops on every channel); rotate the webhook secret; sign-in links; the audit trail."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.models import BillingAccount, Plan, UsagePeriod
from billing.selectors import billing_account_get, billing_period_for
from chat.models import Conversation
from chat.services import conversation_get_or_create, message_record_visitor
from tenants.models import ApiKey, AuditEvent, Membership, Tenant, User
from tenants.services import api_key_authenticate
from tests.dashboard.test_auth import link_in, sign_in_with
from webhooks.models import CrispConnection

pytestmark = pytest.mark.django_db
CRISP_WEBSITE = "0b9d3c1a-6f2e-4d8a-b7c5-1e2f3a4b5c6d"


def _names(response) -> list[str]:
    return [row["name"] for row in response.json()["results"]]


# --- List, search, filters, pages ------------------------------------------------------------------------------------
def test_list_is_newest_first_with_each_tenants_plan_and_state(api, tenant, other_tenant):
    response = api.get("tenants")

    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["results"]}
    assert rows[tenant.pk] == {
        "id": tenant.pk,
        "name": "Acme Test Shop",
        "owner_email": "owner@acme.test",
        "schema_name": tenant.schema_name,
        "subscription_status": "trialing",
        "plan": "trial",
        "suspended": False,
        "suspended_at": None,
        "papercups_account_id": str(tenant.papercups_account_id),
        "created_at": tenant.created_at.isoformat().replace("+00:00", "Z"),
    }
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"search": "globex"}, ["Globex Test Clinic"]),
        ({"search": "OWNER@ACME"}, ["Acme Test Shop"]),
        ({"search": "7d1e0c4b-3a2f-4b8e-9c6d-5e4f3a2b1c0d"}, ["Globex Test Clinic"]),
        ({"search": CRISP_WEBSITE.upper()}, ["Acme Test Shop"]),
        ({"search": "Test", "status": "active"}, ["Globex Test Clinic"]),
        ({"search": "Test", "suspended": "true"}, ["Acme Test Shop"]),
        ({"search": "Test", "suspended": "false"}, ["Globex Test Clinic"]),
        ({"search": "Test", "plan": "pro"}, ["Globex Test Clinic"]),
        ({"search": "Test", "plan": "trial"}, ["Acme Test Shop"]),
        ({"search": "Test", "created_after": "2000-01-01", "created_before": "2000-01-02"}, []),
        ({"search": "Test", "created_after": "2000-01-01"}, ["Globex Test Clinic", "Acme Test Shop"]),
    ],
)
def test_filters_and_search(api, tenant, other_tenant, params, expected):
    pro = Plan.objects.create(code="pro", name="Pro", ai_replies_per_month=5000)
    BillingAccount.objects.filter(tenant=other_tenant).update(plan=pro)
    Tenant.objects.filter(pk=other_tenant.pk).update(subscription_status="active")
    Tenant.objects.filter(pk=tenant.pk).update(suspended_at=timezone.now())
    CrispConnection.objects.create(tenant=tenant, website_id=CRISP_WEBSITE)

    response = api.get("tenants", params)

    assert response.status_code == 200
    assert sorted(_names(response)) == sorted(expected)


def test_cursor_pages_walk_every_tenant_once(api, tenant, other_tenant):
    first = api.get("tenants", {"page_size": 1, "search": "Test"})
    second = api.client.get(first.json()["next"], headers=api.headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert _names(first) + _names(second) == ["Globex Test Clinic", "Acme Test Shop"]
    assert second.json()["next"] is None
    assert first.json()["previous"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"suspended": "maybe"}, "suspended"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-02-01", "created_before": "2026-01-01"}, "created_before"),
        ({"page_size": "1", "cursor": "not-a-cursor"}, None),
    ],
)
def test_bad_filters_are_400(api, tenant, params, field):
    response = api.get("tenants", params)

    assert response.status_code == (404 if field is None else 400)
    if field:
        assert response.json()["error"]["code"] == "invalid"
        assert list(response.json()["error"]["details"]["fields"]) == [field]


# --- Create ----------------------------------------------------------------------------------------------------------
def test_create_onboards_a_tenant_and_shows_its_key_once(api, staff_user, settings):
    settings.NETIA_PUBLIC_URL = "https://netia.example"

    response = api.post("tenants", {"name": "Blue Bottle", "email": "Ana@Blue.test"})

    assert response.status_code == 201
    body = response.json()
    tenant = Tenant.objects.get(pk=body["tenant"]["id"])
    assert (body["tenant"]["name"], body["tenant"]["owner_email"], body["tenant"]["plan"]) == (
        "Blue Bottle",
        "ana@blue.test",
        "trial",
    )
    assert body["chat_token"] == tenant.public_token
    assert body["webhook_url"] == f"https://netia.example/papercups/webhook?token={tenant.webhook_secret}"
    assert api_key_authenticate(raw_key=body["api_key"]).tenant == tenant
    created, first_key = AuditEvent.objects.filter(tenant=tenant).order_by("id")
    assert (created.action, created.actor_kind, created.actor_user_id, created.details) == (
        "tenant.created",
        "staff",
        staff_user.pk,
        {"name": "Blue Bottle", "owner_email": "ana@blue.test"},
    )
    assert (first_key.action, first_key.details["key"]) == (
        "api_key.created",
        f"Default key (nk_{body['api_key'][3:15]}_…)",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@b.test"}, "name"),
        ({"name": "X", "email": "not-an-email"}, "email"),
        ({"name": "", "email": "a@b.test"}, "name"),
        ({"name": "X", "email": "a@b.test", "papercups_account_id": "nope"}, "papercups_account_id"),
        ({"name": "X", "email": "a@b.test", "papercups_url": "ftp://x"}, "papercups_url"),
    ],
)
def test_create_validates_and_creates_nothing(api, body, field):
    before = (Tenant.objects.count(), User.objects.count(), ApiKey.objects.count())

    response = api.post("tenants", body)

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == [field]
    assert (Tenant.objects.count(), User.objects.count(), ApiKey.objects.count()) == before


def test_create_refuses_a_papercups_account_taken_by_another_tenant(api, tenant):
    before = Tenant.objects.count()

    response = api.post(
        "tenants", {"name": "Copy", "email": "copy@shop.test", "papercups_account_id": str(tenant.papercups_account_id)}
    )

    assert response.status_code == 409
    assert Tenant.objects.count() == before


def test_create_refuses_malformed_json(api):
    response = api.client.post("/api/v1/admin/tenants", "{oops", content_type="application/json", headers=api.headers)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "malformed")


# --- Detail ----------------------------------------------------------------------------------------------------------
def test_detail_shows_plan_usage_channel_and_last_activity(api, tenant, customer):
    account = billing_account_get(tenant=tenant)
    start, end = billing_period_for(account=account)
    UsagePeriod.objects.create(tenant=tenant, period_start=start, period_end=end, ai_replies=7)
    User.objects.filter(pk=customer.pk).update(last_login=timezone.now() - timedelta(days=2))
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel=Conversation.Channel.API, session_id="s1")
        message_record_visitor(conversation=conversation, content="Hi")
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now())

    response = api.get(f"tenants/{tenant.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["tenant"]["id"] == tenant.pk
    assert (body["plan"]["code"], body["plan"]["ai_replies_per_month"]) == ("trial", 200)
    assert (body["usage"]["ai_replies"], body["usage"]["ai_replies_limit"]) == (7, 200)
    assert body["bot_access"] == {"allowed": True, "reason": ""}
    assert body["channels"]["papercups"]["account_id"] == str(tenant.papercups_account_id)
    assert body["channels"]["papercups"]["api_key_set"] is False
    assert (body["channels"]["crisp"]["connected"], body["channels"]["crisp"]["website_id"]) == (False, None)
    assert tenant.webhook_secret not in json.dumps(body)
    activity = body["last_activity"]
    assert activity["message_at"] is not None
    assert activity["member_login_at"] is not None
    assert activity["at"] == activity["message_at"]


def test_an_unknown_tenant_is_404(api):
    for response in (api.get("tenants/999999"), api.post("tenants/999999/suspend"), api.get("tenants/999999/audit")):
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


# --- Suspend, resume -------------------------------------------------------------------------------------------------
def test_suspend_then_resume_records_each_once_with_the_reason(api, tenant, staff_user):
    first = api.post(f"tenants/{tenant.pk}/suspend", {"reason": "Chargeback"})
    again = api.post(f"tenants/{tenant.pk}/suspend")
    resumed = api.post(f"tenants/{tenant.pk}/resume")
    resumed_again = api.post(f"tenants/{tenant.pk}/resume")

    assert [r.status_code for r in (first, again, resumed, resumed_again)] == [200, 200, 200, 200]
    assert (first.json()["tenant"]["suspended"], first.json()["bot_access"]) == (
        True,
        {"allowed": False, "reason": "tenant_suspended"},
    )
    assert resumed.json()["tenant"]["suspended"] is False
    events = list(AuditEvent.objects.filter(tenant=tenant).order_by("id"))
    assert [(e.action, e.details, e.actor_user_id, e.ip) for e in events] == [
        ("tenant.suspended", {"reason": "Chargeback"}, staff_user.pk, "127.0.0.1"),
        ("tenant.resumed", {}, staff_user.pk, "127.0.0.1"),
    ]
    assert events[0].actor_label.startswith("root@netia.test (staff key CI (ns_")


@pytest.mark.parametrize("body", [{"reason": "x" * 501}, {"reason": ["a"]}, [1]])
def test_suspend_validates_the_reason_and_changes_nothing(api, tenant, body):
    response = api.post(f"tenants/{tenant.pk}/suspend", body)

    tenant.refresh_from_db()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert tenant.suspended_at is None
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


def test_resume_validates_the_reason(api, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(suspended_at=timezone.now())

    response = api.post(f"tenants/{tenant.pk}/resume", {"reason": "x" * 501})

    tenant.refresh_from_db()
    assert response.status_code == 400
    assert tenant.suspended_at is not None


# --- Webhook secret --------------------------------------------------------------------------------------------------
def test_webhook_secret_rotation_shows_the_new_url_once_and_records_no_secret(api, tenant, settings):
    settings.NETIA_PUBLIC_URL = "https://netia.example"
    old = tenant.webhook_secret

    response = api.post(f"tenants/{tenant.pk}/webhook-secret", {"reason": "leaked in a screenshot"})

    tenant.refresh_from_db()
    assert response.status_code == 200
    assert response.json() == {"webhook_url": f"https://netia.example/papercups/webhook?token={tenant.webhook_secret}"}
    assert tenant.webhook_secret != old
    event = AuditEvent.objects.get(tenant=tenant)
    assert (event.action, event.details) == ("webhook_secret.rotated", {"reason": "leaked in a screenshot"})
    detail = api.get(f"tenants/{tenant.pk}").json()
    assert tenant.webhook_secret not in json.dumps(detail)


def test_webhook_secret_rotation_validates_and_keeps_the_secret(api, tenant):
    response = api.post(f"tenants/{tenant.pk}/webhook-secret", {"reason": "x" * 501})

    assert response.status_code == 400
    assert Tenant.objects.get(pk=tenant.pk).webhook_secret == tenant.webhook_secret


# --- Sign-in link ----------------------------------------------------------------------------------------------------
def test_sign_in_link_is_emailed_to_the_owner_and_signs_them_in_to_the_portal(
    api, tenant, settings, django_capture_on_commit_callbacks
):
    settings.NETIA_PUBLIC_URL = "http://testserver"

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"tenants/{tenant.pk}/sign-in-link")

    assert (response.status_code, response.json()) == (202, {"sent_to": "owner@acme.test"})
    (message,) = mail.outbox
    assert (message.to, message.subject) == (["owner@acme.test"], "Your Netia sign-in link")
    link = link_in(message)
    event = AuditEvent.objects.get(tenant=tenant)
    assert (event.action, event.details) == ("sign_in_link.sent", {"email": "owner@acme.test"})
    token = parse_qs(urlsplit(link).query)["token"][0]
    assert token not in json.dumps(event.details) + event.actor_label

    owner = Client()
    signed_in = sign_in_with(owner, link)
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/portal/")
    assert int(owner.session["_auth_user_id"]) == User.objects.get(email="owner@acme.test").pk
    assert Client().post("/login/link", {"token": token}).status_code == 400  # it works once


@pytest.mark.parametrize(
    ("body", "status"),
    [({"email": "not-an-email"}, 400), ({"email": "stranger@else.test"}, 400), ({"email": "root@netia.test"}, 400)],
)
def test_sign_in_link_only_goes_to_members_who_are_not_staff(
    api, tenant, staff_user, body, status, django_capture_on_commit_callbacks
):
    Membership.objects.create(user=staff_user, tenant=tenant, role="member")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"tenants/{tenant.pk}/sign-in-link", body)

    assert response.status_code == status
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


# --- Audit trail ------------------------------------------------------------------------------------------------------
def test_the_audit_trail_lists_who_did_what_newest_first_in_pages(api, tenant, staff_user):
    for path in ("suspend", "resume", "suspend"):
        api.post(f"tenants/{tenant.pk}/{path}", {"reason": path})

    first = api.get(f"tenants/{tenant.pk}/audit", {"page_size": 2})
    rest = api.client.get(first.json()["next"], headers=api.headers)
    suspensions = api.get(f"tenants/{tenant.pk}/audit", {"action": "tenant.suspended"})

    assert first.status_code == 200
    rows = first.json()["results"] + rest.json()["results"]
    assert [(r["action"], r["details"], r["actor_kind"], r["actor_user"], r["ip"]) for r in rows] == [
        ("tenant.suspended", {"reason": "suspend"}, "staff", staff_user.pk, "127.0.0.1"),
        ("tenant.resumed", {"reason": "resume"}, "staff", staff_user.pk, "127.0.0.1"),
        ("tenant.suspended", {"reason": "suspend"}, "staff", staff_user.pk, "127.0.0.1"),
    ]
    assert [r["action"] for r in suspensions.json()["results"]] == ["tenant.suspended"] * 2


def test_the_audit_trail_refuses_an_unknown_action_filter(api, tenant):
    response = api.get(f"tenants/{tenant.pk}/audit", {"action": "tenant.exploded"})

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == ["action"]
