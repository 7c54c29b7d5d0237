"""Celery tasks of the chat app: thin wrappers that load by id and call one service."""

from __future__ import annotations

import structlog
from celery import Task, shared_task
from django.conf import settings
from django_tenants.utils import get_public_schema_name, schema_context

from chat import embeddings, llm
from chat.notifications import lead_notification_send, lead_notifications_date_missing, lead_notifications_due
from chat.services import LEAD_NOTIFY_TASK
from netia import dispatch
from netia.metrics import SWEEP_REQUEUED
from tenants.models import Tenant

logger = structlog.get_logger(__name__)


def _tenant_schemas() -> list[str]:
    return list(Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list("schema_name", flat=True))


@dispatch.offered
@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True, soft_time_limit=60, time_limit=90)
def lead_notify(self: Task, *, schema_name: str, lead_id: int) -> bool:
    """Email the tenant's owner about a lead, once (retried if the mail server fails, then left to the sweep)."""
    try:
        return lead_notification_send(schema_name=schema_name, lead_id=lead_id)
    except OSError as exc:
        raise self.retry(exc=exc, queue=dispatch.RETRIES_QUEUE) from exc


@shared_task(acks_late=True, soft_time_limit=300, time_limit=330)
def lead_notifications_sweep() -> int:
    """Celery beat: queue again the lead emails no task is sending (lost task, broker outage, retries spent)."""
    queued = 0
    for schema_name in _tenant_schemas():
        with schema_context(schema_name):
            lead_notifications_date_missing()
            lead_ids = list(
                lead_notifications_due(older_than=settings.NOTIFICATION_SWEEP_GRACE_SECONDS).values_list(
                    "pk", flat=True
                )
            )
        for lead_id in lead_ids:
            if dispatch.enqueue_safely(LEAD_NOTIFY_TASK, schema_name=schema_name, lead_id=lead_id):
                queued += 1
    if queued:
        SWEEP_REQUEUED.labels(kind="lead_notification").inc(queued)
        logger.info("lead_notifications_requeued", count=queued)
    return queued


@dispatch.offered
@shared_task(bind=True, max_retries=8, default_retry_delay=30, acks_late=True, soft_time_limit=120, time_limit=150)
def passages_embed(self: Task, *, schema_name: str, article_id: int) -> int:
    """Embed an article's new passages (queued after the article is saved); retried while the API fails."""
    with schema_context(schema_name):
        try:
            return embeddings.passages_embed(article_id=article_id)
        except llm.LLMUnavailable as exc:
            countdown = min(600, 30 * 2**self.request.retries)
            raise self.retry(exc=exc, countdown=countdown, queue=dispatch.RETRIES_QUEUE) from exc


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1860)
def passages_embed_stale(limit_per_tenant: int = 1000) -> int:
    """The beat job: embed passages still missing an embedding of the current model, tenant by tenant."""
    if not embeddings.model():
        return 0
    done = 0
    for schema_name in _tenant_schemas():
        with schema_context(schema_name):
            try:
                done += embeddings.passages_embed(limit=limit_per_tenant)
            except llm.LLMUnavailable:
                logger.warning("passages_embed_stale_failed", schema=schema_name)
    return done
