"""The audit trail end to end: every audited action staff can take (admin API and console) is recorded exactly
once, by the right actor, and no secret ever reaches it."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.urls import reverse

from netia.errors import ValidationFailed
from tenants.audit import SYSTEM
from tenants.models import ApiKey, AuditEvent, Membership, Tenant
from tenants.services import _EDITABLE_SETTINGS, tenant_settings_update
from tests.dashboard.test_auth import link_in
from tests.tenants.factories import UserFactory


def _change_form_data(response: Any, **changes: Any) -> dict[str, Any]:
    """The POST data of an admin change form as rendered (inlines' management forms included), changed."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[name] = "" if value is None else value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
        for subform in formset.forms:
            for name in subform.fields:
                value = subform.initial.get(name, subform.fields[name].initial)
                if value is not None:
                    data[f"{subform.prefix}-{name}"] = value
    data.update(changes)
    return data


@pytest.mark.django_db
def test_every_staff_action_is_recorded_once_by_its_actor_and_never_a_secret(
    api, client, staff_user, settings, django_capture_on_commit_callbacks
):
    settings.NETIA_PUBLIC_URL = "http://testserver"
    papercups_key = "pc-personal-key-" + uuid.uuid4().hex
    created = api.post(
        "tenants",
        {"name": "Trail Shop", "email": "owner@trail.test", "papercups_account_id": str(uuid.uuid4()),
         "papercups_api_key": papercups_key},
    ).json()  # fmt: skip
    tenant_id = created["tenant"]["id"]
    secrets = [created["api_key"], created["webhook_url"].split("token=")[1], papercups_key]
    for path in ("suspend", "suspend", "resume", "resume"):  # each second call changes nothing
        assert api.post(f"tenants/{tenant_id}/{path}", {"reason": "trail test"}).status_code == 200
    secrets.append(api.post(f"tenants/{tenant_id}/webhook-secret").json()["webhook_url"].split("token=")[1])
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"tenants/{tenant_id}/sign-in-link")
    secrets.append(parse_qs(urlsplit(link_in(mail.outbox[0])).query)["token"][0])
    client.force_login(staff_user)
    key = ApiKey.objects.get(tenant_id=tenant_id)
    for _ in range(2):
        client.post(reverse("admin:tenants_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    extend = {"action": "extend_trial", "_selected_action": [tenant_id]}
    client.post(reverse("admin:billing_billingaccount_changelist"), extend)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant_id])
    saved = client.post(change_url, _change_form_data(client.get(change_url), name="Trail Shop & Co"))
    client.get(reverse("admin:staff_tenantrecords_change", args=[tenant_id]))

    assert saved.status_code == 302
    events = AuditEvent.objects.filter(tenant_id=tenant_id)
    assert Counter(events.values_list("action", flat=True)) == {
        "tenant.created": 1,
        "api_key.created": 1,
        "channel.connected": 1,
        "tenant.suspended": 1,
        "tenant.resumed": 1,
        "webhook_secret.rotated": 1,
        "sign_in_link.sent": 1,
        "api_key.revoked": 1,
        "billing.trial_extended": 1,
        "tenant.updated": 1,
        "staff.records_viewed": 1,
    }
    assert {(e.actor_kind, e.actor_user_id) for e in events} == {("staff", staff_user.pk)}
    assert events.get(action="tenant.updated").details == {"name": {"from": "Trail Shop", "to": "Trail Shop & Co"}}
    trail = json.dumps(list(events.values()), default=str)
    leaked = [secret for secret in secrets if secret in trail]
    assert leaked == []
    assert Tenant.objects.get(pk=tenant_id).name == "Trail Shop & Co"


def test_settings_updates_record_only_real_changes_and_refuse_other_columns(tenant):
    unchanged = tenant_settings_update(tenant=tenant, changes={"name": tenant.name}, actor=SYSTEM)

    with pytest.raises(ValidationFailed) as refused:
        tenant_settings_update(tenant=tenant, changes={"webhook_secret": "mine"}, actor=SYSTEM)

    assert unchanged.name == "Acme Test Shop"
    assert refused.value.extra == {"fields": ["webhook_secret"]}
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


def test_the_console_tenant_form_offers_only_what_its_audited_service_changes(client, staff_user, tenant):
    client.force_login(staff_user)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(change_url)
    data = _change_form_data(page, name="Acme & Co", chat_turns_per_hour="5", chat_allowed_origins='["https://x.test"]')

    saved = client.post(change_url, data)

    tenant.refresh_from_db()
    assert set(page.context["adminform"].form.fields) <= _EDITABLE_SETTINGS
    assert saved.status_code == 302
    assert (tenant.name, tenant.chat_turns_per_hour, tenant.chat_allowed_origins) == ("Acme & Co", None, [])
    assert AuditEvent.objects.get(tenant=tenant).details == {"name": {"from": "Acme Test Shop", "to": "Acme & Co"}}


def test_console_memberships_are_read_only_so_no_change_escapes_the_audit_trail(client, staff_user, tenant):
    client.force_login(staff_user)
    membership = Membership.objects.get(tenant=tenant)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(change_url)
    prefix = next(f.formset.prefix for f in page.context["inline_admin_formsets"] if f.formset.model is Membership)
    data = _change_form_data(page, **{f"{prefix}-0-role": "member", f"{prefix}-0-DELETE": "on"})
    other = UserFactory.create(email="sneaky@shop.test")
    data.update({f"{prefix}-TOTAL_FORMS": "2", f"{prefix}-1-user": other.pk, f"{prefix}-1-role": "owner"})

    client.post(change_url, data)
    membership_page = client.get(reverse("admin:tenants_membership_change", args=[membership.pk]))
    client.post(reverse("admin:tenants_membership_change", args=[membership.pk]), {"role": "member"})
    deleted = client.post(reverse("admin:tenants_membership_delete", args=[membership.pk]), {"post": "yes"})
    added = client.get(reverse("admin:tenants_membership_add"))

    assert list(Membership.objects.filter(tenant=tenant).values_list("user__email", "role")) == [
        (tenant.owner_email, "owner")
    ]
    assert (membership_page.status_code, deleted.status_code, added.status_code) == (200, 403, 403)
    assert not AuditEvent.objects.filter(tenant=tenant).exists()
