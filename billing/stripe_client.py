"""The one module that talks to Stripe's API for Netia's own calls (dj-stripe makes the syncing calls).

Objects handed on to dj-stripe's `sync_from_stripe_data` stay StripeObjects (dj-stripe serialises their
decimals itself); the rest are returned as plain dicts.

Every call names the key and the pinned API version explicitly, so nothing depends on values dj-stripe
froze at import time. Stripe errors surface as `ServiceUnavailable` (the message never carries Stripe's
internals); "billing is off" (no STRIPE_SECRET_KEY) surfaces the same way with its own reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import stripe
import structlog
from django.conf import settings

from netia.errors import ServiceUnavailable

logger = structlog.get_logger(__name__)

# The webhook events Netia acts on; the endpoint is subscribed to these only (each costs dj-stripe a
# synchronous API call inside the webhook request).
WEBHOOK_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
)

# Subscription statuses of a subscription that is still going (the customer changes it in the portal).
ONGOING_STATUSES = frozenset({"trialing", "active", "past_due", "unpaid", "paused"})


def stripe_timestamp(value: Any) -> datetime | None:
    """A Stripe timestamp (seconds since the epoch, UTC) as an aware datetime; None when empty."""
    return datetime.fromtimestamp(int(value), UTC) if value else None


def configure() -> None:
    """Apply the timeout and retry settings to the stripe library (called once, when Django starts)."""
    stripe.max_network_retries = settings.STRIPE_MAX_NETWORK_RETRIES
    stripe.default_http_client = stripe.new_default_http_client(timeout=settings.STRIPE_TIMEOUT)


def is_configured() -> bool:
    """Whether billing is on: a Stripe secret key is set."""
    return bool(settings.STRIPE_SECRET_KEY)


def _options() -> dict[str, Any]:
    """Per-call request options (typed loosely: the stubs want literal types for values from settings)."""
    if not is_configured():
        raise ServiceUnavailable("Billing is not available.", extra={"reason": "billing_not_configured"})
    return {"api_key": settings.STRIPE_SECRET_KEY, "stripe_version": settings.STRIPE_API_VERSION}


@contextmanager
def _stripe_errors(operation: str) -> Iterator[None]:
    """Turn a Stripe failure into ServiceUnavailable, logging Stripe's own message for us only."""
    try:
        yield
    except stripe.StripeError as exc:
        logger.warning(
            "stripe_call_failed",
            operation=operation,
            http_status=exc.http_status,
            code=exc.code,
            request_id=exc.request_id,
            error=exc.user_message,
        )
        raise ServiceUnavailable("Billing is temporarily unavailable.", extra={"reason": "stripe_error"}) from exc


def customer_create(*, tenant_id: int, email: str, name: str, subscriber_key: str) -> stripe.Customer:
    """Create the tenant's Stripe customer (idempotent per tenant for Stripe's 24 h key lifetime)."""
    with _stripe_errors("customer_create"):
        customer = stripe.Customer.create(
            email=email,
            name=name,
            metadata={subscriber_key: str(tenant_id)},
            idempotency_key=f"netia-customer-{tenant_id}",
            **_options(),
        )
    return customer


def checkout_session_create(
    *,
    customer_id: str,
    price_id: str,
    tenant_id: int,
    success_url: str,
    cancel_url: str,
    trial_days: int | None,
) -> dict[str, Any]:
    """A subscription-mode Checkout Session for one price; `trial_days` carries the rest of Netia's trial."""
    metadata = {"netia_tenant_id": str(tenant_id)}
    subscription_data: Any = {"metadata": metadata}
    if trial_days:
        subscription_data["trial_period_days"] = trial_days
    with _stripe_errors("checkout_session_create"):
        session = stripe.checkout.Session.create(
            mode="subscription",
            customer=customer_id,
            client_reference_id=str(tenant_id),
            line_items=[{"price": price_id, "quantity": 1}],
            subscription_data=subscription_data,
            metadata=metadata,
            success_url=success_url,
            cancel_url=cancel_url,
            **_options(),
        )
    return session.to_dict()


def portal_session_create(*, customer_id: str, return_url: str) -> dict[str, Any]:
    """A Stripe customer portal session (change plan or card, see invoices, cancel)."""
    with _stripe_errors("portal_session_create"):
        session = stripe.billing_portal.Session.create(
            customer=customer_id,
            return_url=return_url,
            **_options(),
        )
    return session.to_dict()


def subscription_retrieve(*, subscription_id: str) -> stripe.Subscription:
    """A subscription's current state (raises stripe.InvalidRequestError for an unknown id)."""
    return stripe.Subscription.retrieve(subscription_id, **_options())


def subscription_list(*, customer_id: str) -> list[stripe.Subscription]:
    """Every subscription of a customer whatever its status (canceled included), all pages."""
    with _stripe_errors("subscription_list"):
        page = stripe.Subscription.list(customer=customer_id, status="all", limit=100, **_options())
        return list(page.auto_paging_iter())


def checkout_sessions_open(*, customer_id: str) -> list[str]:
    """Ids of the customer's Checkout Sessions that can still be completed."""
    with _stripe_errors("checkout_session_list"):
        page = stripe.checkout.Session.list(customer=customer_id, status="open", limit=100, **_options())
        return [session.id for session in page.auto_paging_iter()]


def checkout_session_expire(*, session_id: str) -> None:
    """Expire an open Checkout Session, so it can no longer create a subscription (one already closed is fine)."""
    try:
        stripe.checkout.Session.expire(session_id, **_options())
    except stripe.InvalidRequestError as exc:
        logger.info("checkout_session_not_expired", session=session_id, error=exc.user_message)
    except stripe.StripeError:
        with _stripe_errors("checkout_session_expire"):
            raise


def webhook_endpoint_create(*, url: str, endpoint_uuid: str) -> stripe.WebhookEndpoint:
    """Register Netia's webhook URL with Stripe for the events Netia handles; the answer carries the secret."""
    with _stripe_errors("webhook_endpoint_create"):
        params: dict[str, Any] = {
            "url": url,
            "enabled_events": list(WEBHOOK_EVENTS),
            "api_version": settings.STRIPE_API_VERSION,
            "metadata": {"djstripe_uuid": endpoint_uuid},
            "description": "Netia billing (dj-stripe)",
        }
        endpoint = stripe.WebhookEndpoint.create(**params, **_options())
    return endpoint


def dashboard_url(kind: str, object_id: str) -> str:
    """The Stripe dashboard page of a customer or subscription (test-mode path unless live)."""
    if not object_id:
        return ""
    mode = "" if settings.STRIPE_LIVE_MODE else "test/"
    return f"https://dashboard.stripe.com/{mode}{kind}/{object_id}"
