"""Celery tasks of the tenants app: thin wrappers that call one service and decide retries."""

from __future__ import annotations

from celery import Task, shared_task

from netia import dispatch
from tenants.notifications import sign_in_email_send as _send


@dispatch.offered
@shared_task(bind=True, max_retries=5, default_retry_delay=30, acks_late=True)
def sign_in_email_send(self: Task, *, email: str, reason: str, tenant_id: int | None, next_path: str) -> bool:
    """Email a sign-in link (retried if the mail server fails)."""
    try:
        return _send(email=email, reason=reason, tenant_id=tenant_id, next_path=next_path)
    except OSError as exc:
        raise self.retry(exc=exc) from exc
