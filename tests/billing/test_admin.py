"""Staff see every tenant's plan, status, trial end, usage and Stripe links; plans are edited in the admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingAccount, Plan
from billing.services import current_period, trial_extend, usage_ai_reply_record
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tests.billing.factories import PlanFactory
from tests.tenants.factories import StaffFactory


@pytest.fixture
def staff(db):
    return StaffFactory.create()


@pytest.fixture
def subscribed(tenant, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_" + "x" * 24
    pro = PlanFactory.create(code="pro")
    Tenant.objects.filter(pk=tenant.pk).update(subscription_status="active")
    BillingAccount.objects.filter(tenant=tenant).update(
        plan=pro, stripe_customer_id="cus_ABC", stripe_subscription_id="sub_XYZ", stripe_status="active"
    )
    for _ in range(3):
        usage_ai_reply_record(tenant=tenant)
    return tenant


def test_billing_list_shows_every_tenant(client, staff, subscribed, other_tenant):
    trial_extend(tenant=other_tenant, until=datetime(2099, 5, 1, tzinfo=UTC), actor=SYSTEM)
    client.force_login(staff)

    response = client.get(reverse("admin:billing_billingaccount_changelist"))

    assert response.status_code == 200
    rows = {str(a.tenant): a for a in response.context["cl"].result_list}
    assert sorted(rows) == ["Acme Test Shop", "Globex Test Clinic"]
    page = response.content.decode()
    start, _ = current_period(tenant=subscribed)
    assert f"3 AI replies since {start:%Y-%m-%d}" in page
    assert '<a href="https://dashboard.stripe.com/test/customers/cus_ABC"' in page
    assert '<a href="https://dashboard.stripe.com/test/subscriptions/sub_XYZ"' in page
    assert "Default (trial)" in page
    assert "May 1, 2099" in page


def test_tenant_page_has_the_billing_inline(client, staff, subscribed):
    client.force_login(staff)

    page = client.get(reverse("admin:tenants_tenant_change", args=[subscribed.pk])).content.decode()

    assert "3 / 1000 AI replies since" in page
    assert "https://dashboard.stripe.com/test/subscriptions/sub_XYZ" in page
    assert ">Pro<" in page


def test_extend_trial_action(client, staff, tenant):
    trial_extend(tenant=tenant, until=timezone.now() - timedelta(days=3), actor=SYSTEM)
    client.force_login(staff)

    client.post(
        reverse("admin:billing_billingaccount_changelist"),
        {"action": "extend_trial", "_selected_action": [tenant.pk]},
    )

    trial_end = BillingAccount.objects.get(tenant=tenant).trial_ends_at
    assert timedelta(days=13, hours=23) < trial_end - timezone.now() <= timedelta(days=14)


def test_plans_are_listed_and_the_default_plan_cannot_be_deleted(client, staff):
    client.force_login(staff)
    default = Plan.objects.get(is_default=True)

    listing = client.get(reverse("admin:billing_plan_changelist"))
    delete = client.get(reverse("admin:billing_plan_delete", args=[default.pk]))

    assert listing.status_code == 200
    assert [p.code for p in listing.context["cl"].result_list] == ["trial"]
    assert delete.status_code == 403
    assert Plan.objects.filter(pk=default.pk).exists()


def test_staff_can_change_a_plans_limits(client, staff):
    plan = PlanFactory.create(code="pro")
    client.force_login(staff)

    response = client.post(
        reverse("admin:billing_plan_change", args=[plan.pk]),
        {
            "code": "pro",
            "name": "Pro",
            "price": "",
            "ai_replies_per_month": "1500",
            "knowledge_articles_max": "",
            "team_seats": "3",
            "is_active": "on",
            "sort_order": "0",
        },
    )

    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.ai_replies_per_month, plan.knowledge_articles_max, plan.team_seats) == (1500, None, 3)


@pytest.mark.parametrize(
    "page",
    [
        "admin:billing_billingaccount_changelist",
        "admin:billing_usageperiod_changelist",
        "admin:billing_billingnotification_changelist",
    ],
)
def test_other_billing_pages_load_for_staff(client, staff, tenant, page):
    client.force_login(staff)

    assert client.get(reverse(page)).status_code == 200


KEPT_DJSTRIPE_PAGES = ["customer", "subscription", "invoice", "price", "product", "event", "webhookendpoint"]


@pytest.mark.parametrize("model", KEPT_DJSTRIPE_PAGES)
def test_the_djstripe_pages_staff_act_on_stay(client, staff, model):
    client.force_login(staff)

    assert client.get(reverse(f"admin:djstripe_{model}_changelist")).status_code == 200


def test_the_console_lists_netia_first_and_only_those_djstripe_pages(client, staff):
    client.force_login(staff)

    index = client.get(reverse("admin:index"))
    charges = client.get("/admin/djstripe/charge/")

    apps = {app["app_label"]: [m["object_name"].lower() for m in app["models"]] for app in index.context["app_list"]}
    assert list(apps) == ["tenants", "billing", "webhooks", "staff", "auth", "axes", "djstripe"]
    assert sorted(apps["djstripe"]) == sorted(KEPT_DJSTRIPE_PAGES)
    assert charges.status_code == 404
