"""The staff console: pages load for staff, are refused to everyone else; actions go through services."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tenants.audit import SYSTEM
from tenants.models import ApiKey
from tenants.services import api_key_create, tenant_suspend
from tests.tenants.factories import StaffFactory, UserFactory

PAGES = [
    "admin:index",
    "admin:tenants_tenant_changelist",
    "admin:tenants_apikey_changelist",
    "admin:tenants_user_changelist",
    "admin:tenants_membership_changelist",
]


@pytest.fixture
def staff(db):
    return StaffFactory.create()


@pytest.fixture
def customer(db):
    return UserFactory.create(email="customer@shop.test")


@pytest.mark.parametrize("page", PAGES)
def test_staff_can_open_console_pages(client, staff, tenant, page):
    client.force_login(staff)

    response = client.get(reverse(page))

    assert response.status_code == 200


def test_staff_can_open_a_tenant_and_filter_and_search(client, staff, tenant, other_tenant):
    client.force_login(staff)

    detail = client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
    found = client.get(reverse("admin:tenants_tenant_changelist"), {"q": "Globex"})
    filtered = client.get(reverse("admin:tenants_tenant_changelist"), {"subscription_status__exact": "active"})

    assert detail.status_code == 200
    assert tenant.webhook_secret not in detail.content.decode()
    assert [t.name for t in found.context["cl"].result_list] == ["Globex Test Clinic"]
    assert list(filtered.context["cl"].result_list) == []


@pytest.mark.parametrize("page", PAGES)
def test_non_staff_and_anonymous_are_sent_to_login(client, customer, page):
    anonymous = client.get(reverse(page))
    client.force_login(customer)
    logged_in = client.get(reverse(page))

    for response in (anonymous, logged_in):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_suspend_and_resume_actions(client, staff, tenant):
    client.force_login(staff)
    url = reverse("admin:tenants_tenant_changelist")

    client.post(url, {"action": "suspend", "_selected_action": [tenant.pk]})
    tenant.refresh_from_db()
    assert tenant.suspended_at is not None

    client.post(url, {"action": "resume", "_selected_action": [tenant.pk]})
    tenant.refresh_from_db()
    assert tenant.suspended_at is None


def test_revoke_action(client, staff, tenant):
    api_key, _ = api_key_create(tenant=tenant, name="Leaked", actor=SYSTEM)
    client.force_login(staff)

    client.post(reverse("admin:tenants_apikey_changelist"), {"action": "revoke", "_selected_action": [api_key.pk]})

    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None


def test_suspended_filter(client, staff, tenant, other_tenant):
    tenant_suspend(tenant=tenant, actor=SYSTEM)
    client.force_login(staff)
    url = reverse("admin:tenants_tenant_changelist")

    suspended = client.get(url, {"suspended_at": "set"}).context["cl"].result_list
    active = client.get(url, {"suspended_at": "unset"}).context["cl"].result_list

    assert [t.name for t in suspended] == ["Acme Test Shop"]
    assert "Acme Test Shop" not in [t.name for t in active]
    assert "Globex Test Clinic" in [t.name for t in active]
