"""Celery tasks of the billing app: thin wrappers that call one service."""

from __future__ import annotations

from celery import Task, shared_task

from billing.services import billing_notification_send as notification_send
from billing.services import trial_reminders_queue
from netia import dispatch


@dispatch.offered
@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True)
def billing_notification_send(self: Task, *, notification_id: int) -> None:
    """Email a recorded billing notification to the tenant's owner (retried if the mail server fails)."""
    try:
        notification_send(notification_id=notification_id)
    except OSError as exc:
        raise self.retry(exc=exc) from exc


@shared_task(acks_late=True)
def trial_reminders_send() -> int:
    """Celery beat, hourly: queue the "trial ending soon" emails that are due (each sent once)."""
    return trial_reminders_queue()
