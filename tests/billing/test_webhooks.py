"""Stripe webhooks through dj-stripe's signed endpoint: every status transition, any event order, replays,
bad signatures. Events come from the fake Stripe, signed exactly as Stripe signs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger

from billing.models import BillingAccount, BillingNotification, Plan
from billing.selectors import bot_access_get
from billing.services import trial_extend
from billing.tasks import billing_invoice_event_followup
from tenants.audit import SYSTEM
from tenants.models import AuditEvent, Tenant
from tests.billing.conftest import STRIPE_KEY


def _state(tenant: Tenant) -> tuple[str, str, str, str | None]:
    """(tenant status, Stripe status, subscription id, plan code) as stored."""
    account = BillingAccount.objects.select_related("plan", "tenant").get(tenant=tenant)
    return (
        account.tenant.subscription_status,
        account.stripe_status,
        account.stripe_subscription_id,
        account.plan.code if account.plan else None,
    )


def _trail(tenant: Tenant) -> list[tuple[str, dict]]:
    """The tenant's plan and status changes in the audit trail, oldest first (all by Stripe)."""
    events = AuditEvent.objects.filter(tenant=tenant, action__startswith="billing.").exclude(
        action=AuditEvent.Action.TRIAL_EXTENDED
    )
    assert {e.actor_label for e in events} <= {"Stripe"}
    return [(e.action, e.details) for e in events.order_by("id")]


def _sub_id(events: list[dict]) -> str:
    return next(e["data"]["object"]["id"] for e in events if e["type"] == "customer.subscription.created")


def test_checkout_completion_makes_the_tenant_active(subscribe, webhooks, tenant, pro_plan, stripe_fake):
    events = subscribe()
    assert bot_access_get(tenant=Tenant.objects.get(pk=tenant.pk)).reason == "trial_ended"

    statuses = webhooks.post_all(events)

    subscription = stripe_fake.get(_sub_id(events))
    item = subscription["items"]["data"][0]
    assert statuses == [200] * 6
    assert _state(tenant) == ("active", "active", subscription["id"], "pro")
    account = BillingAccount.objects.get(tenant=tenant)
    assert (account.current_period_start, account.current_period_end) == (
        datetime.fromtimestamp(item["current_period_start"], UTC),
        datetime.fromtimestamp(item["current_period_end"], UTC),
    )
    assert (account.stripe_customer_id, account.cancel_at_period_end, account.past_due_since) == (
        subscription["customer"],
        False,
        None,
    )
    assert sorted(Event.objects.values_list("type", flat=True)) == sorted(e["type"] for e in events)
    assert bot_access_get(tenant=Tenant.objects.get(pk=tenant.pk)).allowed is True
    assert _trail(tenant) == [
        ("billing.plan_changed", {"from": None, "to": "pro"}),
        ("billing.status_changed", {"from": "trialing", "to": "active"}),
    ]


def test_a_checkout_carrying_the_trial_over_is_trialing_on_stripe(subscribe, webhooks, tenant, stripe_fake):
    events = subscribe(trial_over=False)

    webhooks.post_all(events)
    # Netia's own trial no longer matters.
    trial_extend(tenant=tenant, until=timezone.now() - timedelta(days=1), actor=SYSTEM)

    assert _state(tenant) == ("trialing", "trialing", _sub_id(events), "pro")
    assert bot_access_get(tenant=Tenant.objects.get(pk=tenant.pk)).allowed is True


def test_failed_renewal_is_past_due_and_emails_the_owner_once(
    subscribe, webhooks, tenant, stripe_fake, mailoutbox, django_capture_on_commit_callbacks
):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id

    failed = stripe_fake.renew_subscription(sub_id, paid=False)
    with django_capture_on_commit_callbacks(execute=True):
        statuses = webhooks.post_all(failed)

    assert [e["type"] for e in failed] == [
        "invoice.created",
        "invoice.finalized",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert statuses == [200] * 4
    assert _state(tenant) == ("past_due", "past_due", sub_id, "pro")
    account = BillingAccount.objects.get(tenant=tenant)
    assert account.past_due_since is not None
    assert timezone.now() - account.past_due_since < timedelta(seconds=30)
    invoice = failed[2]["data"]["object"]
    (notification,) = BillingNotification.objects.filter(tenant=tenant)
    assert (notification.kind, notification.key) == ("payment_failed", invoice["id"])
    assert notification.sent_at is not None
    assert [(m.subject, m.to) for m in mailoutbox] == [("Your Netia payment failed", ["owner@acme.test"])]
    assert "We could not collect your Netia payment of 19.00 EUR." in mailoutbox[0].body
    assert invoice["hosted_invoice_url"] in mailoutbox[0].body
    assert mailoutbox[0].alternatives[0][1] == "text/html"
    # Within the grace period the bot keeps answering.
    assert bot_access_get(tenant=Tenant.objects.get(pk=tenant.pk)).allowed is True


def test_payment_failed_alone_is_enough_the_subscription_is_re_retrieved(
    subscribe, webhooks, tenant, stripe_fake, django_capture_on_commit_callbacks
):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    failed = stripe_fake.renew_subscription(sub_id, paid=False)
    stripe_fake.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):
        webhooks.post(failed[2])  # invoice.payment_failed; its customer.subscription.updated never arrives

    assert _state(tenant) == ("past_due", "past_due", sub_id, "pro")
    assert [r.path for r in stripe_fake.requests_to("GET", "/v1/subscriptions/")] == [f"/v1/subscriptions/{sub_id}"]


def test_recovery_unpaid_cancel_and_resubscribe(subscribe, webhooks, tenant, api, pro_plan, stripe_fake):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    webhooks.post_all(stripe_fake.renew_subscription(sub_id, paid=False))
    assert _state(tenant)[0] == "past_due"

    webhooks.post_all(stripe_fake.set_subscription_status(sub_id, "active"))
    assert _state(tenant) == ("active", "active", sub_id, "pro")
    assert BillingAccount.objects.get(tenant=tenant).past_due_since is None

    webhooks.post_all(stripe_fake.set_subscription_status(sub_id, "past_due"))
    webhooks.post_all(stripe_fake.set_subscription_status(sub_id, "unpaid"))
    assert _state(tenant) == ("unpaid", "unpaid", sub_id, "pro")
    assert bot_access_get(tenant=Tenant.objects.get(pk=tenant.pk)).reason == "subscription_inactive"

    webhooks.post_all(stripe_fake.set_subscription_status(sub_id, "canceled"))
    assert _state(tenant) == ("canceled", "canceled", sub_id, None)
    assert bot_access_get(tenant=Tenant.objects.get(pk=tenant.pk)).reason == "subscription_inactive"

    session = api("post", "/checkout", {"plan_id": pro_plan.pk}).json()
    events = stripe_fake.complete_checkout(session["id"])
    webhooks.post_all(events)
    assert _state(tenant) == ("active", "active", _sub_id(events), "pro")
    assert _sub_id(events) != sub_id
    statuses = [(d["from"], d["to"]) for action, d in _trail(tenant) if action == "billing.status_changed"]
    plans = [(d["from"], d["to"]) for action, d in _trail(tenant) if action == "billing.plan_changed"]
    assert statuses == [
        ("trialing", "active"),
        ("active", "past_due"),
        ("past_due", "active"),
        ("active", "past_due"),
        ("past_due", "unpaid"),
        ("unpaid", "canceled"),
        ("canceled", "active"),
    ]
    assert plans == [(None, "pro"), ("pro", None), (None, "pro")]


def test_cancel_at_period_end_stays_active_until_the_period_ends(subscribe, webhooks, tenant, stripe_fake):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id

    stripe.Subscription.modify(sub_id, cancel_at_period_end=True, api_key=STRIPE_KEY)
    webhooks.post_all(stripe_fake.take_events())
    scheduled = (_state(tenant), BillingAccount.objects.get(tenant=tenant).cancel_at_period_end)
    webhooks.post_all(stripe_fake.renew_subscription(sub_id))

    assert scheduled == (("active", "active", sub_id, "pro"), True)
    assert _state(tenant) == ("canceled", "canceled", sub_id, None)


def test_events_in_reverse_order_end_in_the_current_state(subscribe, webhooks, tenant, stripe_fake):
    checkout = subscribe()
    sub_id = _sub_id(checkout)
    failed = stripe_fake.renew_subscription(sub_id, paid=False)

    webhooks.post_all(failed[::-1])
    webhooks.post_all(checkout[::-1])  # the old "created" and "invoice.paid" arrive last

    assert _state(tenant) == ("past_due", "past_due", sub_id, "pro")


def test_an_old_created_event_after_the_cancellation_keeps_it_canceled(subscribe, webhooks, tenant, stripe_fake):
    checkout = subscribe()
    sub_id = _sub_id(checkout)
    deleted = stripe_fake.set_subscription_status(sub_id, "canceled")

    webhooks.post_all(deleted)
    webhooks.post_all(checkout)

    assert _state(tenant) == ("canceled", "canceled", sub_id, None)


def test_replayed_events_change_nothing(
    subscribe, webhooks, tenant, stripe_fake, mailoutbox, django_capture_on_commit_callbacks
):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    failed = stripe_fake.renew_subscription(sub_id, paid=False)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.post_all(failed)
    account_before = BillingAccount.objects.values().get(tenant=tenant)
    trail_before = _trail(tenant)
    events_before = Event.objects.count()
    stripe_fake.requests.clear()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        statuses = webhooks.post_all(failed)

    assert statuses == [200] * 4
    assert BillingAccount.objects.values().get(tenant=tenant) == account_before
    assert _trail(tenant) == trail_before
    assert Tenant.objects.get(pk=tenant.pk).subscription_status == "past_due"
    assert Event.objects.count() == events_before
    assert WebhookEventTrigger.objects.filter(valid=True).count() == events_before + 4
    assert stripe_fake.requests == []
    assert callbacks == []
    assert len(mailoutbox) == 1


@pytest.mark.parametrize(
    ("secret", "age"),
    [("whsec_" + "x" * 32, 0), (None, 3600)],
    ids=["wrong-secret", "stale-timestamp"],
)
def test_bad_signatures_are_400_and_change_nothing(subscribe, webhooks, tenant, stripe_fake, secret, age):
    events = subscribe()
    stripe_fake.requests.clear()

    responses = [webhooks.post(e, secret=secret, timestamp=int(timezone.now().timestamp()) - age) for e in events]

    assert [r.status_code for r in responses] == [400] * 6
    assert Event.objects.count() == 0
    assert list(WebhookEventTrigger.objects.values_list("valid", flat=True)) == [False] * 6
    assert _state(tenant) == ("trialing", "", "", None)
    assert stripe_fake.requests == []


def test_a_missing_signature_is_400(webhooks, stripe_fake):
    event = stripe_fake.make_event("invoice.paid", {"id": "in_1", "object": "invoice"})

    response = webhooks.client.post(webhooks.path, event, content_type="application/json")

    assert response.status_code == 400
    assert (Event.objects.count(), WebhookEventTrigger.objects.count()) == (0, 0)


def test_unhandled_event_types_are_stored_and_ignored(webhooks, tenant, stripe_fake):
    product = stripe.Product.create(name="Add-on", api_key=STRIPE_KEY)
    (created,) = stripe_fake.take_events()
    portal = stripe_fake.make_event(
        "billing_portal.session.created", {"id": "bps_1", "object": "billing_portal.session"}
    )

    statuses = [webhooks.post(created).status_code, webhooks.post(portal).status_code]

    assert (created["type"], created["data"]["object"]["id"]) == ("product.created", product.id)
    assert statuses == [200, 200]
    assert sorted(Event.objects.values_list("type", flat=True)) == ["billing_portal.session.created", "product.created"]
    assert _state(tenant) == ("trialing", "", "", None)


def test_subscriptions_of_customers_that_are_no_tenant_are_ignored(webhooks, tenant, pro_plan, stripe_fake):
    session = stripe.checkout.Session.create(
        mode="subscription",
        line_items=[{"price": pro_plan.price_id, "quantity": 1}],
        success_url="https://elsewhere.test/ok",
        customer_email="someone@elsewhere.test",
        api_key=STRIPE_KEY,
    )
    events = stripe_fake.complete_checkout(session.id)

    statuses = webhooks.post_all(events)

    assert statuses == [200] * 7
    assert BillingAccount.objects.exclude(stripe_subscription_id="").count() == 0
    assert Tenant.objects.exclude(subscription_status="trialing").count() == 0


def test_subscribers_on_a_superseded_price_keep_their_plan(subscribe, webhooks, tenant, pro_plan, stripe_fake):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    stripe_fake.freeze_time(int(timezone.now().timestamp()) + 60)
    new_price = stripe.Price.create(
        product=pro_plan.price.product_id,
        unit_amount=2400,
        currency="eur",
        recurring={"interval": "month"},
        metadata={"netia_plan": "pro"},
        api_key=STRIPE_KEY,
    )
    call_command("billing_sync_plans", stdout=StringIO())

    webhooks.post_all(stripe_fake.set_subscription_status(sub_id, "active"))

    assert Plan.objects.get(code="pro").price_id == new_price.id
    assert _state(tenant) == ("active", "active", sub_id, "pro")


def test_a_payment_failure_reported_after_the_recovery_sends_no_email(
    subscribe, webhooks, tenant, stripe_fake, mailoutbox, django_capture_on_commit_callbacks
):
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    failed = stripe_fake.renew_subscription(sub_id, paid=False)
    recovered = stripe_fake.set_subscription_status(sub_id, "active")

    with django_capture_on_commit_callbacks(execute=True):
        webhooks.post_all(recovered + failed)

    assert _state(tenant) == ("active", "active", sub_id, "pro")
    assert (BillingNotification.objects.count(), mailoutbox) == (0, [])


def test_a_stripe_outage_after_an_invoice_webhook_is_retried_by_the_task(
    subscribe, webhooks, tenant, stripe_fake, django_capture_on_commit_callbacks
):
    """The webhook is accepted whatever Stripe does: re-reading the subscription is a task (retried with backoff,
    and the daily reconciliation catches up), not a call inside dj-stripe's webhook transaction."""
    webhooks.post_all(subscribe())
    sub_id = BillingAccount.objects.get(tenant=tenant).stripe_subscription_id
    payment_failed = stripe_fake.renew_subscription(sub_id, paid=False)[2]
    stripe_fake.inject_error("GET", f"/v1/subscriptions/{sub_id}", status=500)
    stripe_fake.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = webhooks.post(payment_failed)
    state_after_failure = _state(tenant)
    billing_invoice_event_followup.delay(event_id=payment_failed["id"])  # the task's retry

    assert response.status_code == 200
    assert state_after_failure == ("active", "active", sub_id, "pro")
    assert len(stripe_fake.requests_to("GET", f"/v1/subscriptions/{sub_id}")) == 2  # refused, then retried
    assert _state(tenant) == ("past_due", "past_due", sub_id, "pro")
    assert Event.objects.filter(id=payment_failed["id"]).count() == 1
