"""The billing reconciliation (Celery beat daily, `manage.py billing_reconcile` on demand) re-reads Stripe:
lost webhooks are caught up, and a tenant paying for two subscriptions is reported to staff, once."""

from __future__ import annotations

from io import StringIO

import stripe
from django.core.management import call_command

from billing.models import BillingAccount, BillingNotification
from billing.tasks import billing_reconcile_all
from tests.billing.conftest import STRIPE_KEY


def _state(tenant):
    account = BillingAccount.objects.select_related("tenant").get(tenant=tenant)
    return account.tenant.subscription_status, account.stripe_status, account.stripe_subscription_id


def test_a_cancellation_whose_webhook_was_lost_is_caught_up(subscribe, webhooks, tenant, stripe_fake):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    stripe_fake.set_subscription_status(sub_id, "canceled")  # its webhook never arrives

    queued = billing_reconcile_all.delay().get()

    assert queued == 1
    assert _state(tenant) == ("canceled", "canceled", sub_id)
    account = BillingAccount.objects.get(tenant=tenant)
    assert (account.ongoing_subscriptions, account.reconciled_at is not None) == ([], True)


def test_two_ongoing_subscriptions_alert_staff_once(
    subscribe, webhooks, tenant, pro_plan, stripe_fake, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.BILLING_STAFF_EMAILS = ["billing@netia.test"]
    webhooks.post_all(subscribe())
    account = BillingAccount.objects.get(tenant=tenant)
    second = stripe.Subscription.create(  # made in the dashboard, say; its webhooks are lost
        customer=account.stripe_customer_id, items=[{"price": pro_plan.price_id}], api_key=STRIPE_KEY
    )
    out, err = StringIO(), StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("billing_reconcile", stdout=out, stderr=err)
        call_command("billing_reconcile", "--tenant", str(tenant.pk), stdout=StringIO(), stderr=StringIO())

    ongoing = sorted([account.stripe_subscription_id, second.id])
    assert BillingAccount.objects.get(tenant=tenant).ongoing_subscriptions == ongoing
    assert f"2 ongoing subscription(s): {', '.join(ongoing)}" in out.getvalue()
    assert "1 tenant(s) with more than one ongoing subscription." in err.getvalue()
    (alert,) = BillingNotification.objects.filter(tenant=tenant, kind="duplicate_subscriptions")
    assert alert.sent_at is not None
    assert [(m.subject, m.to) for m in mailoutbox] == [
        ("Netia billing: a tenant has more than one subscription", ["billing@netia.test"])
    ]
    assert all(sub in mailoutbox[0].body for sub in ongoing)
