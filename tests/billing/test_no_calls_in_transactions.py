"""No SMTP or Stripe call while one of our transactions (and so any row lock it took) is open.

The fake servers call a probe while the client waits for their answer; it counts the transactions the
calling thread's connection has open beyond the test's own. Zero everywhere: claim the work and commit,
call out, then record the result briefly (the outbox pattern).
"""

from __future__ import annotations

from billing.models import BillingAccount, BillingNotification
from billing.services.notifications import notify_once
from tests.probes import TransactionProbe


def test_billing_emails_are_sent_with_no_transaction_open(tenant, smtp, django_capture_on_commit_callbacks):
    probe = TransactionProbe()
    smtp.on_data = lambda mail: probe("smtp")

    with django_capture_on_commit_callbacks(execute=True):
        notification = notify_once(tenant=tenant, kind="trial_ending", key="k", context={"days_left": 3})

    (mail,) = smtp.messages
    assert (mail.recipients, mail.message["Subject"]) == (["owner@acme.test"], "Your Netia trial ends soon")
    assert probe.seen == [("smtp", 0)]
    assert BillingNotification.objects.get(pk=notification.pk).sent_at is not None


def test_checkout_calls_stripe_with_no_transaction_open(api, tenant, pro_plan, stripe_fake):
    probe = TransactionProbe()
    stripe_fake.on_request = lambda request: probe(f"{request.method} {request.path}")

    response = api("post", "/checkout", {"plan_id": pro_plan.pk})

    assert response.status_code == 201
    calls = {label for label, _ in probe.seen}
    assert {"POST /v1/customers", "GET /v1/subscriptions", "POST /v1/checkout/sessions"} <= calls
    assert {depth for _, depth in probe.seen} == {0}


def test_an_invoice_webhook_re_reads_its_subscription_after_the_webhook_committed(
    subscribe, webhooks, tenant, stripe_fake, django_capture_on_commit_callbacks
):
    """dj-stripe itself re-retrieves the event's invoice inside its webhook transaction; Netia's own call, the
    subscription's, waits for the commit."""
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    payment_failed = stripe_fake.renew_subscription(sub_id, paid=False)[2]
    probe = TransactionProbe()
    stripe_fake.on_request = lambda request: probe(f"{request.method} {request.path}")

    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.post(payment_failed).status_code == 200

    assert [depth for label, depth in probe.seen if label == f"GET /v1/subscriptions/{sub_id}"] == [0]
    assert BillingAccount.objects.get(tenant=tenant).stripe_status == "past_due"
