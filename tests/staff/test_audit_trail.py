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
from tenants.models import ApiKey, AuditEvent, Domain, Membership, Tenant
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


def _domain_rows(page: Any) -> tuple[str, list[Domain]]:
    formset = next(f.formset for f in page.context["inline_admin_formsets"] if f.formset.model is Domain)
    return formset.prefix, [row.instance for row in formset.forms]


def _domains(tenant: Tenant) -> list[tuple[str, bool]]:
    return list(Domain.objects.filter(tenant=tenant).order_by("domain").values_list("domain", "is_primary"))


def test_console_domain_changes_go_through_the_audited_services_each_recorded_once(client, staff_user, tenant):
    client.force_login(staff_user)
    first = Domain.objects.get(tenant=tenant).domain
    Domain.objects.create(tenant=tenant, domain="old.acme.test", is_primary=False)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    prefix, rows = _domain_rows(client.get(change_url))
    old = next(n for n, row in enumerate(rows) if row.domain == "old.acme.test")
    primary = next(n for n, row in enumerate(rows) if row.is_primary)
    data = _change_form_data(client.get(change_url))
    data.update({f"{prefix}-{old}-DELETE": "on", f"{prefix}-{primary}-is_primary": ""})
    new = len(rows)
    data.update({f"{prefix}-TOTAL_FORMS": str(new + 1), f"{prefix}-{new}-domain": "Shop.Acme.TEST"})
    data[f"{prefix}-{new}-is_primary"] = "on"

    saved = client.post(change_url, data, REMOTE_ADDR="198.51.100.7")

    assert saved.status_code == 302
    assert _domains(tenant) == sorted([(first, False), ("shop.acme.test", True)])
    events = AuditEvent.objects.filter(tenant=tenant).order_by("id")
    assert [(e.action, e.details) for e in events] == [
        ("domain.added", {"domain": "shop.acme.test", "primary": True, "previous_primary": first}),
        ("domain.removed", {"domain": "old.acme.test"}),
    ]
    assert {(e.actor_kind, e.actor_user_id, e.actor_label, e.ip) for e in events} == {
        ("staff", staff_user.pk, "root@netia.test", "198.51.100.7")
    }


def test_console_primary_domain_change_is_recorded_once_and_an_unchanged_form_records_nothing(
    client, staff_user, tenant
):
    client.force_login(staff_user)
    first = Domain.objects.get(tenant=tenant).domain
    Domain.objects.create(tenant=tenant, domain="www.acme.test", is_primary=False)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(change_url)
    prefix, rows = _domain_rows(page)
    unchanged = client.post(change_url, _change_form_data(page))
    changes = {f"{prefix}-{n}-is_primary": "" if row.is_primary else "on" for n, row in enumerate(rows)}

    saved = client.post(change_url, _change_form_data(client.get(change_url), **changes), REMOTE_ADDR="198.51.100.7")

    assert (unchanged.status_code, saved.status_code) == (302, 302)
    assert _domains(tenant) == sorted([(first, False), ("www.acme.test", True)])
    (event,) = AuditEvent.objects.filter(tenant=tenant)
    assert (event.action, event.details, event.actor_user_id, event.ip) == (
        "domain.primary_changed",
        {"from": first, "to": "www.acme.test"},
        staff_user.pk,
        "198.51.100.7",
    )


@pytest.mark.parametrize("change", ["delete_primary", "untick_primary", "rename"])
def test_console_domain_changes_that_would_leave_no_primary_or_rename_are_refused_and_nothing_changes(
    client, staff_user, tenant, change
):
    client.force_login(staff_user)
    before = _domains(tenant)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(change_url)
    prefix, _ = _domain_rows(page)
    edit = {
        "delete_primary": {f"{prefix}-0-DELETE": "on"},
        "untick_primary": {f"{prefix}-0-is_primary": ""},
        "rename": {f"{prefix}-0-domain": "renamed.acme.test"},
    }[change]

    response = client.post(change_url, _change_form_data(page, **edit))

    assert response.status_code == (302 if change == "rename" else 200)  # a renamed row's name is read-only
    assert _domains(tenant) == before
    assert not AuditEvent.objects.filter(tenant=tenant).exists()
