"""Celery tasks of the chat app: thin wrappers that load by id and call one service."""

from __future__ import annotations

from celery import Task, shared_task

from chat.notifications import lead_notification_send
from netia import dispatch


@dispatch.offered
@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True)
def lead_notify(self: Task, *, schema_name: str, lead_id: int) -> None:
    """Email the tenant's owner about a new or updated lead (retried if the mail server fails)."""
    try:
        lead_notification_send(schema_name=schema_name, lead_id=lead_id)
    except OSError as exc:
        raise self.retry(exc=exc) from exc
