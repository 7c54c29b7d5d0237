"""Celery tasks of the billing app: thin wrappers that call one service."""

from __future__ import annotations

import stripe
import structlog
from celery import Task, shared_task
from django.conf import settings

from billing import selectors, stripe_client
from billing.services import (
    billing_account_reconcile,
    billing_notifications_due,
    stripe_invoice_followup,
    trial_reminders_queue,
)
from billing.services import billing_notification_send as notification_send
from billing.services.notifications import SEND_TASK
from billing.services.stripe_sync import RECONCILE_TENANT_TASK
from netia import dispatch
from netia.errors import ServiceUnavailable
from netia.metrics import SWEEP_REQUEUED
from tenants.models import Tenant

logger = structlog.get_logger(__name__)


@dispatch.offered
@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True, soft_time_limit=60, time_limit=90)
def billing_notification_send(self: Task, *, notification_id: int) -> bool:
    """Email a recorded billing notification, once (retried if the mail server fails, then left to the sweep)."""
    try:
        return notification_send(notification_id=notification_id)
    except OSError as exc:
        raise self.retry(exc=exc, queue=dispatch.RETRIES_QUEUE) from exc


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def billing_notifications_sweep() -> int:
    """Celery beat: queue again the billing emails no task is sending (lost task, broker outage, retries spent)."""
    ids = list(
        billing_notifications_due(older_than=settings.NOTIFICATION_SWEEP_GRACE_SECONDS).values_list("pk", flat=True)
    )
    queued = sum(dispatch.enqueue_safely(SEND_TASK, notification_id=pk) for pk in ids)
    if queued:
        SWEEP_REQUEUED.labels(kind="billing_notification").inc(queued)
    return queued


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def trial_reminders_send() -> int:
    """Celery beat, hourly: queue the "trial ending soon" emails that are due (each sent once)."""
    return trial_reminders_queue()


@dispatch.offered
@shared_task(bind=True, max_retries=8, acks_late=True, soft_time_limit=90, time_limit=120)
def billing_invoice_event_followup(self: Task, *, event_id: str) -> int | None:
    """After an invoice webhook: re-read its subscription from Stripe and recompute the tenant's status."""
    try:
        tenant = stripe_invoice_followup(event_id=event_id)
    except (stripe.StripeError, ServiceUnavailable) as exc:
        raise self.retry(
            exc=exc, countdown=min(3600, 30 * 2**self.request.retries), queue=dispatch.RETRIES_QUEUE
        ) from exc
    return tenant.pk if tenant is not None else None


@dispatch.offered
@shared_task(bind=True, max_retries=3, acks_late=True, soft_time_limit=120, time_limit=150)
def billing_reconcile_tenant(self: Task, *, tenant_id: int) -> list[str]:
    """Re-read one tenant's Stripe subscriptions; returns the ongoing ones (more than one alerts staff)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return []
    try:
        account = billing_account_reconcile(tenant=tenant)
    except (stripe.StripeError, ServiceUnavailable) as exc:
        raise self.retry(exc=exc, countdown=300, queue=dispatch.RETRIES_QUEUE) from exc
    return list(account.ongoing_subscriptions)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def billing_reconcile_all() -> int:
    """Celery beat, daily: queue a reconciliation of every tenant known to Stripe; returns how many."""
    if not stripe_client.is_configured():
        return 0
    tenant_ids = list(selectors.tenants_with_stripe_customer().values_list("pk", flat=True))
    return sum(dispatch.enqueue_safely(RECONCILE_TENANT_TASK, tenant_id=pk) for pk in tenant_ids)
