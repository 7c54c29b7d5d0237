"""Billing emails to the tenant's owner: recorded once, sent after commit by a task, and the trial reminders."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import STAFF_KINDS, BillingAccount, BillingNotification
from billing.stripe_client import stripe_timestamp
from netia import claims, dispatch
from netia.metrics import EMAILS_GIVEN_UP
from tenants.models import Tenant

SEND_TASK = "billing.tasks.billing_notification_send"
logger = structlog.get_logger(__name__)

_CLAIM = {"claimed_field": "claimed_at", "done_field": "sent_at"}
_FAILED = {
    "attempts_field": "attempts",
    "gave_up_field": "gave_up_at",
    "error_field": "error",
    "reason_field": "gave_up_reason",
}


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
    BillingNotification.Kind.DUPLICATE_SUBSCRIPTIONS: "Netia billing: a tenant has more than one subscription",
}


def billing_notification_send(*, notification_id: int) -> bool:
    """Send a recorded billing email unless it was sent (or is being sent); True if this call sent it.

    The notification is claimed (one committed UPDATE) before the mail server is called and marked sent
    after: no row lock is held while talking SMTP. An OSError from the mail server propagates (the task
    retries) and gives the claim back. Staff alerts go to BILLING_STAFF_EMAILS, the rest to the owner.
    """
    rows = BillingNotification.objects.filter(pk=notification_id, gave_up_at__isnull=True)
    if not claims.claim(rows, lease=settings.NOTIFICATION_CLAIM_SECONDS, **_CLAIM):
        return False
    notification = BillingNotification.objects.select_related("tenant").get(pk=notification_id)
    if claims.too_old(notification.created_at, max_age=settings.NOTIFICATION_MAX_AGE_SECONDS):
        if claims.expired(rows, gave_up_field="gave_up_at", reason_field="gave_up_reason"):
            _given_up(notification, error="too old to send")
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
    kind = BillingNotification.Kind(notification.kind)
    recipients = list(settings.BILLING_STAFF_EMAILS) if kind in STAFF_KINDS else [tenant.owner_email]
    template = f"billing/email/{notification.kind}"
    message = EmailMultiAlternatives(
        subject=_SUBJECTS[kind],
        body=render_to_string(f"{template}.txt", context),
        to=recipients,
        headers={"Message-ID": f"<billing-{notification.pk}@netia>"},
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    try:
        claims.perform(rows, message.send if recipients else lambda: None, **_CLAIM)
    except OSError as error:
        if _give_up(
            rows,
            notification=notification,
            error=str(error),
            give_up=claims.GiveUp.REFUSED if claims.permanent(error) else None,
        ):
            return False
        raise
    return bool(recipients)


def _give_up(
    rows: QuerySet[BillingNotification], *, notification: BillingNotification, error: str, give_up: claims.GiveUp | None
) -> bool:
    """Record a failed send; True if the email is given up (logged, counted, shown in the staff console)."""
    if not claims.failed(rows, error, give_up=give_up, max_attempts=settings.NOTIFICATION_MAX_ATTEMPTS, **_FAILED):
        return False
    _given_up(notification, error=error)
    return True


def _given_up(notification: BillingNotification, *, error: str) -> None:
    EMAILS_GIVEN_UP.labels(kind="billing").inc()
    logger.warning("billing_notification_given_up", notification=notification.pk, kind=notification.kind, error=error)


def billing_notifications_due(*, older_than: float) -> QuerySet[BillingNotification]:
    """Notifications neither sent nor being sent, recorded `older_than` seconds ago or more (for the sweep)."""
    rows = BillingNotification.objects.filter(
        gave_up_at__isnull=True, created_at__lt=timezone.now() - timedelta(seconds=older_than)
    )
    return claims.unclaimed(rows, lease=settings.NOTIFICATION_CLAIM_SECONDS, **_CLAIM)


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
