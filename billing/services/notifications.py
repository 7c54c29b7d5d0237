"""Billing emails to the tenant's owner: recorded once, sent after commit by a task, and the trial reminders."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import BillingAccount, BillingNotification
from billing.stripe_client import stripe_timestamp
from netia import dispatch
from tenants.models import Tenant

SEND_TASK = "billing.tasks.billing_notification_send"


def notify_once(*, tenant: Tenant, kind: str, key: str, context: dict[str, Any]) -> BillingNotification | None:
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
    dispatch.enqueue_on_commit(SEND_TASK, notification_id=notification.pk)
    return notification


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
            "next_attempt": stripe_timestamp(notification.context.get("next_attempt")),
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
            if notify_once(
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
