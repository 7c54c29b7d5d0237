"""dj-stripe webhook signals Netia listens to: thin receivers that hand the Event to one service.

dj-stripe sends these inside its webhook transaction, after it synced the event's object (`djstripe` is
listed before `billing` in INSTALLED_APPS, so its own receivers run first), and only for an event id it
has not seen: a replayed delivery reaches no receiver. Every other event type is stored by dj-stripe and
ignored here.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from billing.services import stripe_event_apply
from billing.stripe_client import WEBHOOK_EVENTS


def _on_stripe_event(sender: Any, event: Event, **kwargs: Any) -> None:
    stripe_event_apply(event=event)


def connect() -> None:
    """Subscribe to the event types Netia acts on (called once from BillingConfig.ready)."""
    for event_type in WEBHOOK_EVENTS:
        WEBHOOK_SIGNALS[event_type].connect(_on_stripe_event, dispatch_uid=f"netia-billing:{event_type}")
