"""Stripe synchronisation: the tenant's status, plan and period recomputed from what dj-stripe synced.

Status is never taken from an event's payload: every subscription or invoice webhook re-reads the
subscription state dj-stripe synced (re-retrieved from Stripe) and recomputes the tenant's status, so
events may arrive in any order or twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer, Event, Price, Subscription

from billing import stripe_client
from billing.models import BillingAccount, BillingNotification, Plan
from billing.selectors import billing_account_get
from billing.services.accounts import account_for_update
from billing.services.notifications import notify_once
from billing.services.plans import plan_code
from billing.stripe_client import ONGOING_STATUSES, stripe_timestamp
from netia import dispatch
from netia.metrics import BILLING_EVENTS
from tenants.audit import Actor, audit_record
from tenants.models import AuditEvent, Tenant

logger = structlog.get_logger(__name__)
# Plan and status changes derived from Stripe's data are Stripe's doing, whichever webhook brought them.
STRIPE = Actor.system("Stripe")

# Stripe subscription status -> the tenant's status. `incomplete`/`incomplete_expired` subscriptions never
# started (the first payment did not go through), so they are skipped when choosing the current one.
_STATUS_FROM_STRIPE = {
    "trialing": Tenant.SubscriptionStatus.TRIALING,
    "active": Tenant.SubscriptionStatus.ACTIVE,
    "past_due": Tenant.SubscriptionStatus.PAST_DUE,
    "unpaid": Tenant.SubscriptionStatus.UNPAID,
    "paused": Tenant.SubscriptionStatus.UNPAID,  # a trial that ended without a card: payment is required
    "canceled": Tenant.SubscriptionStatus.CANCELED,
}


def _current_subscription(subscriptions: Iterable[Subscription]) -> Subscription | None:
    """The subscription the tenant's status follows: the newest ongoing one, else the newest canceled one."""
    ranked = sorted(
        (s for s in subscriptions if s.stripe_data.get("status") in _STATUS_FROM_STRIPE),
        key=lambda s: (s.stripe_data.get("status") in ONGOING_STATUSES, s.stripe_data.get("created") or 0),
        reverse=True,
    )
    return ranked[0] if ranked else None


def _period_of(data: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """A subscription's current period: per item since API version 2025-03-31 (dahlia has no top-level one)."""
    items = (data.get("items") or {}).get("data") or []
    starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
    if starts and ends:
        return stripe_timestamp(min(starts)), stripe_timestamp(max(ends))
    return stripe_timestamp(data.get("current_period_start")), stripe_timestamp(data.get("current_period_end"))


def _interval_of(data: dict[str, Any]) -> tuple[str, int]:
    """The billing interval of the subscription's (first) price, e.g. ("year", 1); ("", 1) if unknown."""
    for item in (data.get("items") or {}).get("data") or []:
        price = item.get("price")
        recurring = price.get("recurring") if isinstance(price, dict) else None
        if isinstance(recurring, dict) and recurring.get("interval"):
            return str(recurring["interval"]), int(recurring.get("interval_count") or 1)
    return "", 1


def _plan_of(data: dict[str, Any]) -> Plan | None:
    """The Plan of the subscription's price: mapped to it, else named by its `netia_plan` metadata (a
    superseded price a plan no longer points at keeps its subscribers on that plan). None if neither."""
    items = (data.get("items") or {}).get("data") or []
    price_ids = [i["price"]["id"] if isinstance(i.get("price"), dict) else i.get("price") for i in items]
    price_ids = [p for p in price_ids if p]
    plan = Plan.objects.filter(price__id__in=price_ids).first()
    if plan is None:
        codes = [plan_code(p) for p in Price.objects.select_related("product").filter(id__in=price_ids)]
        plan = Plan.objects.filter(code__in=[c for c in codes if c]).first()
    if plan is None and price_ids:
        logger.warning("subscription_price_unmapped", subscription=data.get("id"), prices=price_ids)
    return plan


def billing_account_sync(*, tenant: Tenant, now: datetime | None = None) -> BillingAccount:
    """Recompute the tenant's status, plan and period from its dj-stripe subscriptions (the state
    dj-stripe last retrieved from Stripe). Running it again without a Stripe change changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        account = account_for_update(tenant=tenant)
        subscriptions = Subscription.objects.filter(
            customer__subscriber=tenant, customer__livemode=settings.STRIPE_LIVE_MODE
        )
        current = _current_subscription(subscriptions)
        fields: dict[str, Any]
        if current is None:
            status = Tenant.SubscriptionStatus.TRIALING  # back to Netia's own trial (which may be over)
            fields = {
                "plan": None,
                "stripe_subscription_id": "",
                "stripe_status": "",
                "current_period_start": None,
                "current_period_end": None,
                "cancel_at_period_end": False,
                "price_interval": "",
                "price_interval_count": 1,
            }
        else:
            data = current.stripe_data
            status = _STATUS_FROM_STRIPE[data["status"]]
            start, end = _period_of(data)
            fields = {
                "plan": _plan_of(data) if data["status"] in ONGOING_STATUSES else None,
                "stripe_subscription_id": current.id,
                "stripe_status": data["status"],
                "current_period_start": start,
                "current_period_end": end,
                "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
            }
            fields["price_interval"], fields["price_interval_count"] = _interval_of(data)
            if current.customer_id:
                fields["stripe_customer_id"] = current.customer_id
        if status == Tenant.SubscriptionStatus.PAST_DUE:
            fields["past_due_since"] = account.past_due_since or now
        else:
            fields["past_due_since"] = None
        changed = [name for name, value in fields.items() if getattr(account, name) != value]
        if "plan" in changed:
            plans = {"from": _code(account.plan), "to": _code(fields["plan"])}
            audit_record(tenant=tenant, actor=STRIPE, action=AuditEvent.Action.PLAN_CHANGED, details=plans)
        for name in changed:
            setattr(account, name, fields[name])
        account.synced_at = now
        account.save(update_fields=[*changed, "synced_at", "updated_at"])
        previous = Tenant.objects.filter(pk=tenant.pk).values_list("subscription_status", flat=True).get()
        if previous != status:
            Tenant.objects.filter(pk=tenant.pk).update(subscription_status=status, updated_at=now)
            logger.info("tenant_subscription_status_changed", tenant=tenant.pk, before=previous, after=status)
            statuses = {"from": previous, "to": status}
            audit_record(tenant=tenant, actor=STRIPE, action=AuditEvent.Action.STATUS_CHANGED, details=statuses)
        tenant.subscription_status = status
    return account


def _code(plan: Plan | None) -> str | None:
    """A plan's code for the trail; None: no subscribed plan (the default applies)."""
    return plan.code if plan is not None else None


def _tenant_of_customer(customer_id: str | None) -> Tenant | None:
    if not customer_id:
        return None
    customer = Customer.objects.select_related("subscriber").filter(id=customer_id).first()
    return customer.subscriber if customer is not None else None


def _subscription_refresh(*, subscription_id: str) -> None:
    """Re-retrieve a subscription from Stripe into dj-stripe (invoice events do not sync it themselves).

    A subscription Stripe no longer knows is skipped, as dj-stripe does for its own events; other Stripe
    errors propagate, so the delivery fails with 500 and Stripe retries it.
    """
    try:
        data = stripe_client.subscription_retrieve(subscription_id=subscription_id)
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            logger.warning("stripe_subscription_missing", subscription=subscription_id)
            return
        raise
    Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)


INVOICE_FOLLOWUP_TASK = "billing.tasks.billing_invoice_event_followup"
RECONCILE_TENANT_TASK = "billing.tasks.billing_reconcile_tenant"


def stripe_event_apply(*, event: Event) -> Tenant | None:
    """Apply a processed dj-stripe Event to the tenant it concerns; returns that tenant (None: not ours).

    Runs inside dj-stripe's webhook transaction, after dj-stripe synced the event's object, and only
    for a new event id (replays are answered by dj-stripe without calling handlers). Makes no Stripe call
    itself: an invoice event (which does not sync its subscription) queues `stripe_invoice_followup`.
    """
    obj = event.data.get("object", {})
    if not (event.type.startswith("customer.subscription.") or event.type in INVOICE_EVENTS):
        return None
    tenant = _tenant_of_customer(obj.get("customer"))
    if tenant is None:
        logger.info("stripe_event_without_tenant", event_id=event.id, type=event.type)
        BILLING_EVENTS.labels(type=event.type, outcome="no_tenant").inc()
        return None
    billing_account_sync(tenant=tenant)
    BILLING_EVENTS.labels(type=event.type, outcome="applied").inc()
    if event.type in INVOICE_EVENTS:
        dispatch.enqueue_on_commit(INVOICE_FOLLOWUP_TASK, event_id=event.id)
    return tenant


INVOICE_EVENTS = ("invoice.paid", "invoice.payment_failed")


def stripe_invoice_followup(*, event_id: str) -> Tenant | None:
    """After an invoice event: re-read its subscription from Stripe (no transaction open), recompute the
    tenant's status, and email the owner about a failed payment while the subscription is still unpaid.

    Stripe errors propagate (the task retries); the daily reconciliation catches up in any case.
    """
    event = Event.objects.filter(id=event_id).first()
    if event is None:
        return None
    obj = event.data.get("object", {})
    tenant = _tenant_of_customer(obj.get("customer"))
    if tenant is None:
        return None
    parent = (obj.get("parent") or {}).get("subscription_details") or {}
    subscription_id = parent.get("subscription") or obj.get("subscription")
    if isinstance(subscription_id, str):
        _subscription_refresh(subscription_id=subscription_id)
    billing_account_sync(tenant=tenant)
    # Only while the subscription is still unpaid: a failure reported after the card went through is news
    # to no one.
    overdue = tenant.subscription_status in (Tenant.SubscriptionStatus.PAST_DUE, Tenant.SubscriptionStatus.UNPAID)
    if event.type == "invoice.payment_failed" and overdue:
        notify_once(
            tenant=tenant,
            kind=BillingNotification.Kind.PAYMENT_FAILED,
            key=str(obj.get("id", event.id)),
            context={
                "amount_due": obj.get("amount_due"),
                "currency": str(obj.get("currency") or "").upper(),
                "invoice_url": obj.get("hosted_invoice_url") or "",
                "next_attempt": obj.get("next_payment_attempt"),
            },
        )
    return tenant


def billing_account_reconcile(*, tenant: Tenant) -> BillingAccount:
    """Re-read the tenant's subscriptions from Stripe, sync them, recompute the status (daily and on demand).

    No transaction is open during the Stripe calls. More than one ongoing subscription is a billing error
    (the tenant pays twice): it is recorded on the account and staff are emailed once per set of ids.
    """
    customer_ids = set(
        Customer.objects.filter(subscriber=tenant, livemode=settings.STRIPE_LIVE_MODE).values_list("id", flat=True)
    )
    account = billing_account_get(tenant=tenant)
    if account.stripe_customer_id:
        customer_ids.add(account.stripe_customer_id)
    remote: list[Any] = []
    for customer_id in sorted(customer_ids):
        remote.extend(stripe_client.subscription_list(customer_id=customer_id))
    for subscription in remote:
        Subscription.sync_from_stripe_data(subscription, api_key=settings.STRIPE_SECRET_KEY)
    account = billing_account_sync(tenant=tenant)
    ongoing = sorted(s.id for s in remote if s.status in ONGOING_STATUSES)
    now = timezone.now()
    BillingAccount.objects.filter(pk=account.pk).update(ongoing_subscriptions=ongoing, reconciled_at=now)
    account.ongoing_subscriptions, account.reconciled_at = ongoing, now
    if len(ongoing) > 1:
        logger.warning("billing_duplicate_subscriptions", tenant=tenant.pk, subscriptions=ongoing)
        notify_once(
            tenant=tenant,
            kind=BillingNotification.Kind.DUPLICATE_SUBSCRIPTIONS,
            key=",".join(ongoing),
            context={"subscriptions": ongoing},
        )
    return account
