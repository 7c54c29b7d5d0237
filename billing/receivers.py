"""Signals billing listens to: dj-stripe's webhook events and the tenants layer's onboarding hook.

Thin receivers that hand what happened to one service. dj-stripe sends its webhook signals inside its
webhook transaction, after it synced the event's object (`djstripe` is listed before `billing` in
INSTALLED_APPS, so its own receivers run first), and only for an event id it has not seen: a replayed
delivery reaches no receiver. Every other event type is stored by dj-stripe and ignored here.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from billing.selectors import plan_quota_check
from billing.services import billing_account_create, stripe_event_apply
from billing.stripe_client import WEBHOOK_EVENTS
from tenants.models import Tenant
from tenants.signals import membership_adding, tenant_onboarded


def _on_stripe_event(sender: Any, event: Event, **kwargs: Any) -> None:
    stripe_event_apply(event=event)


def _on_tenant_onboarded(sender: Any, tenant: Tenant, **kwargs: Any) -> None:
    billing_account_create(tenant=tenant)  # starts the free trial, inside the onboarding transaction


def _on_membership_adding(sender: Any, tenant: Tenant, seats_used: int, **kwargs: Any) -> None:
    plan_quota_check(tenant=tenant, resource="team_seats", used=seats_used)  # raises PlanLimitExceeded


def connect() -> None:
    """Subscribe to the tenant and Stripe events billing acts on (called once from BillingConfig.ready)."""
    tenant_onboarded.connect(_on_tenant_onboarded, dispatch_uid="netia-billing:tenant-onboarded")
    membership_adding.connect(_on_membership_adding, dispatch_uid="netia-billing:membership-adding")
    for event_type in WEBHOOK_EVENTS:
        WEBHOOK_SIGNALS[event_type].connect(_on_stripe_event, dispatch_uid=f"netia-billing:{event_type}")
