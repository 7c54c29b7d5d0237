"""The portal records what owners change in the audit trail, and shows owners their business's trail."""

from __future__ import annotations

from collections import Counter

from tenants.audit import Actor, audit_record
from tenants.models import ApiKey, AuditEvent, Membership, User


def test_team_and_api_key_changes_made_in_the_portal_are_recorded_once_by_the_owner(
    owner_client, owner, tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/portal/team/invite", {"email": "bea@acme.test", "role": "member"}, REMOTE_ADDR="192.0.2.4")
    bea = Membership.objects.get(tenant=tenant, user__email="bea@acme.test")
    for _ in range(2):  # the second time changes nothing
        owner_client.post(f"/portal/team/{bea.pk}/role", {"role": "owner"})
    owner_client.post(f"/portal/team/{bea.pk}/remove")
    owner_client.post("/portal/api-keys/new", {"name": "CRM", "permissions": ["leads:read"]})
    key = ApiKey.objects.get(tenant=tenant, name="CRM")
    owner_client.post(f"/portal/api-keys/{key.pk}/revoke")
    owner_client.post(f"/portal/api-keys/{key.pk}/revoke")

    events = AuditEvent.objects.filter(tenant=tenant).order_by("id")
    assert Counter(events.values_list("action", flat=True)) == {
        "member.invited": 1,
        "member.role_changed": 1,
        "member.removed": 1,
        "api_key.created": 1,
        "api_key.revoked": 1,
    }
    assert {(e.actor_kind, e.actor_user_id, e.actor_label) for e in events} == {("user", owner.pk, "owner@acme.test")}
    assert [e.details for e in events[:3]] == [
        {"email": "bea@acme.test", "role": "member"},
        {"email": "bea@acme.test", "from": "member", "to": "owner"},
        {"email": "bea@acme.test", "role": "owner"},
    ]
    assert events[0].ip == "192.0.2.4"


def test_owners_see_the_trail_with_netia_staff_anonymous_and_members_cannot(owner_client, member_client, tenant):
    staff = User.objects.create_user("root@netia.test", is_staff=True)
    audit_record(
        tenant=tenant, actor=Actor.staff(staff), action="tenant.suspended", ip="10.9.8.7", details={"reason": "Unpaid"}
    )
    owner = User.objects.get(email="owner@acme.test")
    audit_record(
        tenant=tenant,
        actor=Actor.member(owner),
        action="tenant.updated",
        ip="192.0.2.4",
        details={"name": {"from": "Acme", "to": "Acme Test Shop"}},
    )

    page = owner_client.get("/portal/activity")
    refused = member_client.get("/portal/activity")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Tenant suspended" in html
    assert "Netia staff" in html
    assert "root@netia.test" not in html
    assert "10.9.8.7" not in html
    assert "reason: Unpaid" in html
    assert "name: Acme → Acme Test Shop" in html
    assert "owner@acme.test" in html
    assert "from 192.0.2.4" in html
    assert refused.status_code == 403
