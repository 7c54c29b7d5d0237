"""Domains in the domain service and the staff console: a host name taken by another tenant between the check and
the insert (a race) is a Conflict (409 in the API, a clear message in the console), never an IntegrityError (500);
a new console row starts not primary."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.models.signals import pre_save
from django.urls import reverse

from netia.errors import Conflict
from tenants.audit import SYSTEM
from tenants.models import AuditEvent, Domain, Tenant
from tenants.services import domain_add
from tests.staff.test_audit_trail import _change_form_data, _domain_rows, _domains
from tests.tenants.factories import StaffFactory

RACED = "raced.shop.test"


@pytest.fixture
def taken_meanwhile(other_tenant: Tenant) -> Iterator[None]:
    """Another tenant takes RACED after our check found it free and before our insert: just before our INSERT
    (Django's pre_save), a second database connection inserts that row for the other tenant and commits."""
    other = connection.get_new_connection(connection.get_connection_params())
    table = Domain._meta.db_table

    def insert_first(sender: type[Domain], instance: Domain, **kwargs: Any) -> None:
        if instance.pk is None and instance.domain == RACED:
            with other.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (domain, tenant_id, is_primary) VALUES (%s, %s, false)",
                    [RACED, other_tenant.pk],
                )
            other.commit()

    pre_save.connect(insert_first, sender=Domain)
    try:
        yield
    finally:
        pre_save.disconnect(insert_first, sender=Domain)
        with other.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE domain = %s", [RACED])
        other.commit()
        other.close()


def test_a_domain_taken_by_another_tenant_meanwhile_is_a_conflict_and_nothing_of_ours_is_saved(
    tenant, other_tenant, taken_meanwhile
):
    before = _domains(tenant)

    with pytest.raises(Conflict) as refused:
        domain_add(tenant=tenant, domain=RACED, actor=SYSTEM)

    assert (refused.value.message, refused.value.extra) == (
        f"{RACED} is already a tenant's domain.",
        {"field": "domain"},
    )
    assert _domains(tenant) == before
    assert (RACED, False) in _domains(other_tenant)
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


def test_the_console_shows_the_conflict_of_a_domain_taken_meanwhile_and_saves_nothing_of_the_change(
    client, tenant, other_tenant, taken_meanwhile
):
    client.force_login(StaffFactory.create())
    before = _domains(tenant)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(change_url)
    prefix, rows = _domain_rows(page)
    data = _change_form_data(page, name="Acme Renamed")
    data.update({f"{prefix}-TOTAL_FORMS": str(len(rows) + 1), f"{prefix}-{len(rows)}-domain": RACED})

    response = client.post(change_url, data, follow=True)

    tenant.refresh_from_db()
    assert response.redirect_chain == [(change_url, 302)]
    assert [(m.level_tag, m.message) for m in response.context["messages"]] == [
        ("error", f"Nothing was saved: {RACED} is already a tenant's domain.")
    ]
    assert (tenant.name, _domains(tenant)) == ("Acme Test Shop", before)
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


def _checkbox(html: str, name: str) -> str:
    (tag,) = re.findall(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html)
    return tag


def test_a_new_console_domain_row_starts_not_primary(client, tenant):
    client.force_login(StaffFactory.create())

    page = client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))

    prefix, _ = _domain_rows(page)
    assert "checked" not in _checkbox(page.content.decode(), f"{prefix}-__prefix__-is_primary")


def test_a_tenants_first_domain_added_in_the_console_unticked_becomes_primary_by_the_service_rule(client, tenant):
    client.force_login(StaffFactory.create())
    Domain.objects.filter(tenant=tenant).delete()
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(change_url)
    prefix, rows = _domain_rows(page)
    data = _change_form_data(page, **{f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-domain": "first.acme.test"})

    saved = client.post(change_url, data)

    assert (rows, saved.status_code) == ([], 302)
    assert _domains(tenant) == [("first.acme.test", True)]
    (event,) = AuditEvent.objects.filter(tenant=tenant)
    assert event.details == {"domain": "first.acme.test", "primary": True}


def test_a_new_unticked_console_domain_beside_the_primary_is_added_not_primary(client, tenant):
    client.force_login(StaffFactory.create())
    (primary,) = _domains(tenant)
    change_url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(change_url)
    prefix, rows = _domain_rows(page)
    data = _change_form_data(page)
    data.update({f"{prefix}-TOTAL_FORMS": str(len(rows) + 1), f"{prefix}-{len(rows)}-domain": "www.acme.test"})

    saved = client.post(change_url, data)

    assert saved.status_code == 302
    assert _domains(tenant) == sorted([primary, ("www.acme.test", False)])
