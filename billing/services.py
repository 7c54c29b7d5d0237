"""Writes for billing: trials, the tenant's Stripe customer, Checkout and portal sessions, the tenant's
status derived from Stripe, usage metering, billing emails and plan mapping.

Status is never taken from an event's payload: every subscription or invoice webhook re-reads the
subscription state dj-stripe synced (re-retrieved from Stripe) and recomputes the tenant's status, so
events may arrive in any order or twice.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import stripe
import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from djstripe.models import Customer, Event, Price, Subscription, WebhookEndpoint
from djstripe.settings import djstripe_settings

from billing import stripe_client
from billing.models import BillingAccount, BillingNotification, Plan, UsagePeriod
from billing.selectors import billing_account_get, billing_period_for, plan_for_account, plan_list_purchasable
from netia.errors import Conflict, NotFound, ValidationFailed
from netia.metrics import BILLING_EVENTS
from tenants.models import Tenant

logger = structlog.get_logger(__name__)

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
_ONGOING = frozenset({"trialing", "active", "past_due", "unpaid", "paused"})
# Usage emails: (kind, percent of the limit), highest first; one email per period and limit each.
_USAGE_THRESHOLDS = (
    (BillingNotification.Kind.USAGE_LIMIT, 100),
    (BillingNotification.Kind.USAGE_WARNING, 80),
)


@dataclass(frozen=True)
class RedirectSession:
    """A Stripe-hosted page to send the owner to (Checkout or the customer portal)."""

    id: str
    url: str


# --- Trial ---------------------------------------------------------------------------------------------------
def billing_account_create(*, tenant: Tenant, now: datetime | None = None) -> BillingAccount:
    """Start a new tenant's free trial (BILLING_TRIAL_DAYS, no card); idempotent."""
    now = now or timezone.now()
    account, _ = BillingAccount.objects.get_or_create(
        tenant=tenant, defaults={"trial_ends_at": now + timedelta(days=settings.BILLING_TRIAL_DAYS)}
    )
    return account


def trial_extend(*, tenant: Tenant, until: datetime) -> BillingAccount:
    """Move the tenant's trial end (staff goodwill); reminders are keyed by the end, so a new end gets its
    own reminder."""
    with transaction.atomic():
        account = _account_for_update(tenant=tenant)
        account.trial_ends_at = until
        account.save(update_fields=["trial_ends_at", "updated_at"])
    return account


def _account_for_update(*, tenant: Tenant) -> BillingAccount:
    """The tenant's account, created if missing, locked until the caller's transaction ends."""
    billing_account_create(tenant=tenant)
    return BillingAccount.objects.select_for_update().get(tenant=tenant)


# --- Stripe customer, Checkout, portal ---------------------------------------------------------------------------
def stripe_customer_ensure(*, tenant: Tenant) -> Customer:
    """The tenant's dj-stripe Customer, created in Stripe on first need (the account row lock serialises
    concurrent first requests; Stripe's idempotency key covers a retry after a lost answer)."""
    with transaction.atomic():
        account = _account_for_update(tenant=tenant)
        customer = (
            Customer.objects.filter(subscriber=tenant, livemode=settings.STRIPE_LIVE_MODE, date_purged__isnull=True)
            .order_by("-created")
            .first()
        )
        if customer is None:
            data = stripe_client.customer_create(
                tenant_id=tenant.pk,
                email=tenant.owner_email,
                name=tenant.name,
                subscriber_key=djstripe_settings.SUBSCRIBER_CUSTOMER_KEY,
            )
            # The metadata's subscriber key makes dj-stripe attach the tenant.
            customer = Customer.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        if account.stripe_customer_id != customer.id:
            account.stripe_customer_id = customer.id
            account.save(update_fields=["stripe_customer_id", "updated_at"])
    return customer


def _plan_for_checkout(*, plan_id: int | None, price_id: str) -> Plan:
    plans = plan_list_purchasable()
    plan = plans.filter(pk=plan_id).first() if plan_id is not None else plans.filter(price__id=price_id).first()
    if plan is None:
        raise NotFound("No such plan.", extra={"plan_id": plan_id} if plan_id is not None else {"price_id": price_id})
    return plan


def _with_query(url: str, **params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def checkout_session_create(
    *,
    tenant: Tenant,
    plan_id: int | None = None,
    price_id: str = "",
    return_url: str = "",
    now: datetime | None = None,
) -> RedirectSession:
    """A Stripe Checkout page subscribing the tenant to a plan (named by plan id or Stripe price id).

    The rest of Netia's trial carries over as a Stripe trial (whole days). A tenant that already has an
    ongoing subscription changes plan in the customer portal instead (Conflict).
    """
    if (plan_id is None) == (not price_id):
        raise ValidationFailed("Give exactly one of plan_id and price_id.")
    plan = _plan_for_checkout(plan_id=plan_id, price_id=price_id)
    account = billing_account_get(tenant=tenant)
    if account.stripe_subscription_id and account.stripe_status in _ONGOING:
        raise Conflict(
            "The tenant already has a subscription; change it in the billing portal.",
            extra={"reason": "already_subscribed"},
        )
    now = now or timezone.now()
    trial_days = math.floor((account.trial_ends_at - now) / timedelta(days=1))
    customer = stripe_customer_ensure(tenant=tenant)
    base = return_url or settings.BILLING_RETURN_URL
    assert plan.price is not None  # noqa: S101 - _plan_for_checkout only returns priced plans
    data = stripe_client.checkout_session_create(
        customer_id=customer.id,
        price_id=plan.price.id,
        tenant_id=tenant.pk,
        success_url=_with_query(base, checkout="success"),
        cancel_url=_with_query(base, checkout="canceled"),
        trial_days=trial_days if trial_days >= 1 and not account.stripe_subscription_id else None,
    )
    logger.info("checkout_session_created", tenant=tenant.pk, plan=plan.code, session=data["id"])
    return RedirectSession(id=data["id"], url=data["url"])


def portal_session_create(*, tenant: Tenant, return_url: str = "") -> RedirectSession:
    """A Stripe customer portal page where the owner changes plan or card, sees invoices, or cancels."""
    customer = stripe_customer_ensure(tenant=tenant)
    data = stripe_client.portal_session_create(
        customer_id=customer.id, return_url=return_url or settings.BILLING_RETURN_URL
    )
    return RedirectSession(id=data["id"], url=data["url"])


# --- Status from Stripe --------------------------------------------------------------------------------------------
def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _current_subscription(subscriptions: Iterable[Subscription]) -> Subscription | None:
    """The subscription the tenant's status follows: the newest ongoing one, else the newest canceled one."""
    ranked = sorted(
        (s for s in subscriptions if s.stripe_data.get("status") in _STATUS_FROM_STRIPE),
        key=lambda s: (s.stripe_data.get("status") in _ONGOING, s.stripe_data.get("created") or 0),
        reverse=True,
    )
    return ranked[0] if ranked else None


def _period_of(data: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """A subscription's current period: per item since API version 2025-03-31 (dahlia has no top-level one)."""
    items = (data.get("items") or {}).get("data") or []
    starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
    if starts and ends:
        return _timestamp(min(starts)), _timestamp(max(ends))
    return _timestamp(data.get("current_period_start")), _timestamp(data.get("current_period_end"))


def _plan_code(price: Price) -> str:
    product_metadata = price.product.metadata if price.product is not None else {}
    return str({**(product_metadata or {}), **(price.metadata or {})}.get("netia_plan") or "").strip()


def _plan_of(data: dict[str, Any]) -> Plan | None:
    """The Plan of the subscription's price: mapped to it, else named by its `netia_plan` metadata (a
    superseded price a plan no longer points at keeps its subscribers on that plan). None if neither."""
    items = (data.get("items") or {}).get("data") or []
    price_ids = [i["price"]["id"] if isinstance(i.get("price"), dict) else i.get("price") for i in items]
    price_ids = [p for p in price_ids if p]
    plan = Plan.objects.filter(price__id__in=price_ids).first()
    if plan is None:
        codes = [_plan_code(p) for p in Price.objects.select_related("product").filter(id__in=price_ids)]
        plan = Plan.objects.filter(code__in=[c for c in codes if c]).first()
    if plan is None and price_ids:
        logger.warning("subscription_price_unmapped", subscription=data.get("id"), prices=price_ids)
    return plan


def billing_account_sync(*, tenant: Tenant, now: datetime | None = None) -> BillingAccount:
    """Recompute the tenant's status, plan and period from its dj-stripe subscriptions (the state
    dj-stripe last retrieved from Stripe). Running it again without a Stripe change changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        account = _account_for_update(tenant=tenant)
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
            }
        else:
            data = current.stripe_data
            status = _STATUS_FROM_STRIPE[data["status"]]
            start, end = _period_of(data)
            fields = {
                "plan": _plan_of(data) if data["status"] in _ONGOING else None,
                "stripe_subscription_id": current.id,
                "stripe_status": data["status"],
                "current_period_start": start,
                "current_period_end": end,
                "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
            }
            if current.customer_id:
                fields["stripe_customer_id"] = current.customer_id
        if status == Tenant.SubscriptionStatus.PAST_DUE:
            fields["past_due_since"] = account.past_due_since or now
        else:
            fields["past_due_since"] = None
        changed = [name for name, value in fields.items() if getattr(account, name) != value]
        for name in changed:
            setattr(account, name, fields[name])
        account.synced_at = now
        account.save(update_fields=[*changed, "synced_at", "updated_at"])
        previous = Tenant.objects.filter(pk=tenant.pk).values_list("subscription_status", flat=True).get()
        if previous != status:
            Tenant.objects.filter(pk=tenant.pk).update(subscription_status=status, updated_at=now)
            logger.info("tenant_subscription_status_changed", tenant=tenant.pk, before=previous, after=status)
        tenant.subscription_status = status
    return account


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


def stripe_event_apply(*, event: Event) -> Tenant | None:
    """Apply a processed dj-stripe Event to the tenant it concerns; returns that tenant (None: not ours).

    Runs inside dj-stripe's webhook transaction, after dj-stripe synced the event's object, and only
    for a new event id (replays are answered by dj-stripe without calling handlers).
    """
    obj = event.data.get("object", {})
    if event.type.startswith("customer.subscription."):
        tenant = _tenant_of_customer(obj.get("customer"))
    elif event.type in ("invoice.paid", "invoice.payment_failed"):
        tenant = _tenant_of_customer(obj.get("customer"))
        parent = (obj.get("parent") or {}).get("subscription_details") or {}
        subscription_id = parent.get("subscription") or obj.get("subscription")
        if tenant is not None and isinstance(subscription_id, str):
            _subscription_refresh(subscription_id=subscription_id)
    else:
        return None
    if tenant is None:
        logger.info("stripe_event_without_tenant", event_id=event.id, type=event.type)
        BILLING_EVENTS.labels(type=event.type, outcome="no_tenant").inc()
        return None
    billing_account_sync(tenant=tenant)
    BILLING_EVENTS.labels(type=event.type, outcome="applied").inc()
    # Only while the subscription is still unpaid: a failure reported after the card went through is news
    # to no one.
    overdue = tenant.subscription_status in (Tenant.SubscriptionStatus.PAST_DUE, Tenant.SubscriptionStatus.UNPAID)
    if event.type == "invoice.payment_failed" and overdue:
        _notify_once(
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


# --- Usage metering --------------------------------------------------------------------------------------------
def current_period(*, tenant: Tenant, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The tenant's current billing period: the live Stripe subscription's, else the calendar month (UTC)."""
    return billing_period_for(account=billing_account_get(tenant=tenant), now=now)


@transaction.atomic
def usage_ai_reply_record(*, tenant: Tenant) -> int:
    """Count one AI reply for the tenant's current period; returns the new count. Safe under concurrency.

    The increment is one UPDATE (row lock held to the end of the caller's transaction, so the count read
    back is exact); the period's first reply inserts the row, and a concurrent insert loses the unique race
    and increments instead. Crossing 80% / 100% of the plan's limit queues the owner's email, once.
    """
    account = billing_account_get(tenant=tenant)
    start, end = billing_period_for(account=account)
    period = UsagePeriod.objects.filter(tenant=tenant, period_start=start)
    if not period.update(ai_replies=F("ai_replies") + 1):
        try:
            with transaction.atomic():
                UsagePeriod.objects.create(tenant=tenant, period_start=start, period_end=end, ai_replies=1)
        except IntegrityError:  # another worker created the period first
            period.update(ai_replies=F("ai_replies") + 1)
    count = period.values_list("ai_replies", flat=True).get()
    _usage_notifications_queue(tenant=tenant, account=account, period_start=start, period_end=end, count=count)
    return count


def _usage_notifications_queue(
    *, tenant: Tenant, account: BillingAccount, period_start: datetime, period_end: datetime, count: int
) -> None:
    plan = plan_for_account(account=account)
    limit = plan.ai_replies_per_month
    if not limit:
        return
    for kind, percent in _USAGE_THRESHOLDS:
        if count * 100 >= limit * percent:
            _notify_once(
                tenant=tenant,
                kind=kind,
                # Per period and limit: an upgrade mid-period warns again about the new limit.
                key=f"{period_start.isoformat()}/{limit}",
                context={
                    "plan": plan.name,
                    "limit": limit,
                    "used": count,
                    "percent": percent,
                    "period_end": period_end.isoformat(),
                },
            )
            return


# --- Emails ----------------------------------------------------------------------------------------------------
def _notify_once(*, tenant: Tenant, kind: str, key: str, context: dict[str, Any]) -> BillingNotification | None:
    """Record a billing email and queue it after commit; None if it was recorded before (sent once)."""
    try:
        with transaction.atomic():
            notification, created = BillingNotification.objects.get_or_create(
                tenant=tenant, kind=kind, key=key, defaults={"context": context}
            )
    except IntegrityError:  # a concurrent worker recorded it between our read and insert
        return None
    if not created:
        return None
    notification_id = notification.pk
    transaction.on_commit(lambda: _queue_notification(notification_id))
    return notification


def _queue_notification(notification_id: int) -> None:
    from billing.tasks import billing_notification_send

    billing_notification_send.delay(notification_id=notification_id)


_SUBJECTS = {
    BillingNotification.Kind.TRIAL_ENDING: "Your Netia trial ends soon",
    BillingNotification.Kind.PAYMENT_FAILED: "Your Netia payment failed",
    BillingNotification.Kind.USAGE_WARNING: "You have used 80% of your Netia AI replies",
    BillingNotification.Kind.USAGE_LIMIT: "You have used all your Netia AI replies",
}


def billing_notification_send(*, notification_id: int) -> bool:
    """Send a recorded billing email unless already sent; True if this call sent it.

    The row stays locked while the mail server is talked to, so a duplicate task waits and then skips.
    An OSError from the mail server propagates (the task retries) and leaves the email unsent.
    """
    with transaction.atomic():
        notification = BillingNotification.objects.select_for_update().select_related("tenant").get(pk=notification_id)
        if notification.sent_at is not None:
            return False
        tenant = notification.tenant
        context = {
            **notification.context,
            "tenant": tenant,
            "billing_url": settings.BILLING_RETURN_URL,
            "trial_ends_at": _parse_time(notification.context.get("trial_ends_at")),
            "period_end": _parse_time(notification.context.get("period_end")),
            "next_attempt": _timestamp(notification.context.get("next_attempt")),
            "amount": _money(notification.context.get("amount_due"), notification.context.get("currency", "")),
        }
        template = f"billing/email/{notification.kind}"
        message = EmailMultiAlternatives(
            subject=_SUBJECTS[BillingNotification.Kind(notification.kind)],
            body=render_to_string(f"{template}.txt", context),
            to=[tenant.owner_email],
        )
        message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
        message.send()
        notification.sent_at = timezone.now()
        notification.save(update_fields=["sent_at"])
    return True


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _money(cents: Any, currency: str) -> str:
    return f"{int(cents) / 100:.2f} {currency}".strip() if cents is not None else ""


def trial_reminders_queue(*, now: datetime | None = None) -> int:
    """Queue the "trial ending" email for trials ending within BILLING_TRIAL_REMINDER_DAYS (once per trial
    end) of tenants without a subscription; returns how many were queued."""
    now = now or timezone.now()
    accounts = BillingAccount.objects.select_related("tenant").filter(
        stripe_subscription_id="",
        trial_ends_at__gt=now,
        trial_ends_at__lte=now + timedelta(days=settings.BILLING_TRIAL_REMINDER_DAYS),
        tenant__subscription_status=Tenant.SubscriptionStatus.TRIALING,
        tenant__suspended_at__isnull=True,
    )
    queued = 0
    for account in accounts:
        with transaction.atomic():
            ends = account.trial_ends_at.isoformat()
            if _notify_once(
                tenant=account.tenant,
                kind=BillingNotification.Kind.TRIAL_ENDING,
                key=ends,
                context={
                    "trial_ends_at": ends,
                    "days_left": math.ceil((account.trial_ends_at - now) / timedelta(days=1)),
                },
            ):
                queued += 1
    return queued


# --- Plans and the webhook endpoint ------------------------------------------------------------------------------
_LIMIT_KEYS = ("ai_replies_per_month", "knowledge_articles_max", "team_seats")


def _limits_from_metadata(metadata: dict[str, Any]) -> dict[str, int | None]:
    """Limits named in Stripe metadata; "unlimited" (or empty) means no limit."""
    limits: dict[str, int | None] = {}
    for key in _LIMIT_KEYS:
        if key not in metadata:
            continue
        raw = str(metadata[key]).strip().lower()
        if raw in ("", "unlimited"):
            limits[key] = None
        elif raw.isdigit():
            limits[key] = int(raw)
        else:
            logger.warning("plan_limit_metadata_invalid", key=key, value=metadata[key])
    return limits


@transaction.atomic
def plans_sync_from_prices() -> list[Plan]:
    """Create or update a Plan for every synced recurring price whose metadata (price's, else product's)
    names `netia_plan`; limits come from the metadata keys when given, else they stay as edited here.

    Returns the plans touched. A new plan without all three limits in metadata is created inactive, so it
    is not offered before staff set its limits. When several active prices name one plan, the newest is
    the one Checkout sells; subscribers on the others keep the plan through its code.
    """
    touched: list[Plan] = []
    for price in Price.objects.select_related("product").filter(active=True).order_by("created"):
        if not (price.stripe_data.get("recurring") or {}).get("interval"):
            continue
        code = _plan_code(price)
        if not code:
            continue
        product_metadata = price.product.metadata if price.product is not None else {}
        limits = _limits_from_metadata({**(product_metadata or {}), **(price.metadata or {})})
        name = price.product.name if price.product is not None else code
        plan = Plan.objects.filter(price=price).first() or Plan.objects.filter(code=code).first()
        if plan is None:
            plan = Plan(code=code, name=name, is_active=len(limits) == len(_LIMIT_KEYS))
        plan.price = price
        plan.name = name
        for key, value in limits.items():
            setattr(plan, key, value)
        plan.full_clean(exclude=["price"])
        plan.save()
        touched.append(plan)
    return touched


def webhook_endpoint_create(*, base_url: str) -> WebhookEndpoint:
    """Register `<base_url>/stripe/webhook/<uuid>/` with Stripe for Netia's events and store its secret."""
    endpoint_uuid = str(uuid.uuid4())
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    data = stripe_client.webhook_endpoint_create(url=f"{base_url.rstrip('/')}{path}", endpoint_uuid=endpoint_uuid)
    return WebhookEndpoint.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
