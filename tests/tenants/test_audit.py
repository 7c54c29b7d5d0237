"""The audit trail: one writer that refuses secrets and unknown actions; owners read their own tenant's trail."""

from __future__ import annotations

import pytest
from django.db import transaction

from tenants.audit import SYSTEM, Actor, audit_record
from tenants.models import ApiKey, AuditEvent, User
from tenants.services import api_key_create


@pytest.mark.parametrize(
    "details",
    [
        {"api_key_secret": "x"},
        {"new": {"webhook_secret": "x"}},
        {"changes": [{"password": "x"}]},
        {"Token": "x"},
        {"secret_hash": "x"},
    ],
)
def test_details_that_look_like_secrets_are_refused(tenant, details):
    with pytest.raises(ValueError, match="must not hold secrets"):
        audit_record(tenant=tenant, actor=SYSTEM, action=AuditEvent.Action.TENANT_SUSPENDED, details=details)
    assert not AuditEvent.objects.exists()


def test_unknown_actions_are_refused(tenant):
    with pytest.raises(ValueError, match="unknown audit action"):
        audit_record(tenant=tenant, actor=SYSTEM, action="tenant.deleted")


def test_an_event_rolls_back_with_the_change_it_records(tenant):
    @transaction.atomic
    def failing_change() -> None:
        audit_record(tenant=tenant, actor=SYSTEM, action=AuditEvent.Action.TENANT_SUSPENDED)
        raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()

    assert not AuditEvent.objects.exists()


def test_actors_are_recorded_as_ids_and_a_label(tenant):
    user = User.objects.get(email=tenant.owner_email)
    api_key, _ = api_key_create(tenant=tenant, name="CI", actor=SYSTEM)

    member = audit_record(tenant=tenant, actor=Actor.member(user), action="tenant.resumed", ip="203.0.113.9")
    keyed = audit_record(tenant=tenant, actor=Actor.api_key(api_key), action="tenant.resumed")

    assert (member.actor_kind, member.actor_user_id, member.actor_label, member.ip) == (
        "user",
        user.pk,
        "owner@acme.test",
        "203.0.113.9",
    )
    assert (keyed.actor_kind, keyed.actor_key_id, keyed.actor_label) == (
        "api_key",
        api_key.pk,
        f"CI (nk_{api_key.prefix}_…)",
    )


# --- GET /api/v1/customer/audit ---------------------------------------------------------------------------------------
def _get(client, key: str, **params):
    return client.get("/api/v1/customer/audit", params, headers={"Authorization": f"Bearer {key}"})


def test_owners_read_their_own_trail_with_staff_anonymised(client, tenant, other_tenant):
    staff = User.objects.create_user("root@netia.test", is_staff=True)
    owner_key, key = api_key_create(
        tenant=tenant, name="Owner", permissions=[ApiKey.Permission.AUDIT_READ], actor=SYSTEM
    )
    audit_record(tenant=tenant, actor=Actor.staff(staff), action="tenant.suspended", ip="10.0.0.1")
    audit_record(tenant=tenant, actor=SYSTEM, action="billing.status_changed", details={"from": "a", "to": "b"})
    audit_record(tenant=other_tenant, actor=SYSTEM, action="tenant.suspended")

    response = _get(client, key)

    assert response.status_code == 200
    rows = [{k: v for k, v in row.items() if k not in ("id", "created_at")} for row in response.json()["results"]]
    assert rows == [
        {
            "action": "billing.status_changed",
            "actor_kind": "system",
            "actor": "Netia",
            "ip": None,
            "details": {"from": "a", "to": "b"},
        },
        {"action": "tenant.suspended", "actor_kind": "staff", "actor": "Netia staff", "ip": None, "details": {}},
        {
            "action": "api_key.created",
            "actor_kind": "system",
            "actor": "Netia",
            "ip": None,
            "details": {"key": str(owner_key), "permissions": ["audit:read"]},
        },
    ]
    filtered = _get(client, key, action="tenant.suspended").json()["results"]
    assert [row["action"] for row in filtered] == ["tenant.suspended"]


def test_the_trail_needs_the_audit_permission_and_a_valid_filter(client, tenant):
    _, without = api_key_create(tenant=tenant, name="Bot", permissions=[ApiKey.Permission.BOT_READ], actor=SYSTEM)
    _, key = api_key_create(tenant=tenant, name="Owner", permissions=[ApiKey.Permission.AUDIT_READ], actor=SYSTEM)

    assert _get(client, without).status_code == 403
    assert client.get("/api/v1/customer/audit").status_code == 401
    bad = _get(client, key, action="tenant.exploded")
    assert (bad.status_code, list(bad.json()["error"]["details"]["fields"])) == (400, ["action"])
