"""Subscribing: the tenant's Stripe customer, Stripe Checkout and the customer portal."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer, Subscription
from djstripe.settings import djstripe_settings

from billing import stripe_client
from billing.models import Plan
from billing.selectors import billing_account_get, plan_list_purchasable
from billing.services.accounts import account_for_update
from billing.services.stripe_sync import billing_account_sync
from billing.stripe_client import ONGOING_STATUSES
from netia.errors import Conflict, NotFound, ValidationFailed
from netia.locks import advisory_lock
from tenants.models import Tenant

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RedirectSession:
    """A Stripe-hosted page to send the owner to (Checkout or the customer portal)."""

    id: str
    url: str


def _customer_of(tenant: Tenant) -> Customer | None:
    return (
        Customer.objects.filter(subscriber=tenant, livemode=settings.STRIPE_LIVE_MODE, date_purged__isnull=True)
        .order_by("-created")
        .first()
    )


def stripe_customer_ensure(*, tenant: Tenant) -> Customer:
    """The tenant's dj-stripe Customer, created in Stripe on first need.

    No transaction is open during the Stripe call: concurrent first requests both ask Stripe, whose
    idempotency key (per tenant) gives both the same customer; the account is then updated briefly.
    """
    customer = _customer_of(tenant)
    if customer is None:
        data = stripe_client.customer_create(
            tenant_id=tenant.pk,
            email=tenant.owner_email,
            name=tenant.name,
            subscriber_key=djstripe_settings.SUBSCRIBER_CUSTOMER_KEY,
        )
        # The metadata's subscriber key makes dj-stripe attach the tenant.
        customer = Customer.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    with transaction.atomic():
        account = account_for_update(tenant=tenant)
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
    ongoing subscription, here or in Stripe, changes plan in the customer portal instead (Conflict); the
    customer's other open Checkout Sessions are expired first, so at most one can create a subscription.
    """
    if (plan_id is None) == (not price_id):
        raise ValidationFailed("Give exactly one of plan_id and price_id.")
    plan = _plan_for_checkout(plan_id=plan_id, price_id=price_id)
    account = billing_account_get(tenant=tenant)
    if account.stripe_subscription_id and account.stripe_status in ONGOING_STATUSES:
        raise Conflict(
            "The tenant already has a subscription; change it in the billing portal.",
            extra={"reason": "already_subscribed"},
        )
    now = now or timezone.now()
    trial_days = math.floor((account.trial_ends_at - now) / timedelta(days=1))
    customer = stripe_customer_ensure(tenant=tenant)
    base = return_url or settings.BILLING_RETURN_URL
    assert plan.price is not None  # noqa: S101 - _plan_for_checkout only returns priced plans
    with advisory_lock(f"netia:checkout:{tenant.pk}") as acquired:
        if not acquired:
            raise Conflict("A checkout for this tenant is being created; try again.", extra={"reason": "busy"})
        # Stripe is the truth: a subscription whose webhook has not reached us must not get a twin.
        ongoing = [s for s in stripe_client.subscription_list(customer_id=customer.id) if s.status in ONGOING_STATUSES]
        if ongoing:
            for subscription in ongoing:
                Subscription.sync_from_stripe_data(subscription, api_key=settings.STRIPE_SECRET_KEY)
            billing_account_sync(tenant=tenant)
            raise Conflict(
                "The tenant already has a subscription; change it in the billing portal.",
                extra={"reason": "already_subscribed"},
            )
        # Only the newest Checkout page can be paid: an older one left open would create a second subscription.
        for session_id in stripe_client.checkout_sessions_open(customer_id=customer.id):
            stripe_client.checkout_session_expire(session_id=session_id)
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
