"""Celery tasks of the chat app: thin wrappers that load by id and call one service."""

from __future__ import annotations

import structlog
from celery import Task, shared_task
from django_tenants.utils import get_public_schema_name, schema_context

from chat import embeddings, llm
from chat.notifications import lead_notification_send
from netia import dispatch
from tenants.models import Tenant

logger = structlog.get_logger(__name__)


@dispatch.offered
@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True)
def lead_notify(self: Task, *, schema_name: str, lead_id: int) -> None:
    """Email the tenant's owner about a new or updated lead (retried if the mail server fails)."""
    try:
        lead_notification_send(schema_name=schema_name, lead_id=lead_id)
    except OSError as exc:
        raise self.retry(exc=exc) from exc


@dispatch.offered
@shared_task(bind=True, max_retries=8, default_retry_delay=30, acks_late=True)
def passages_embed(self: Task, *, schema_name: str, article_id: int) -> int:
    """Embed an article's new passages (queued after the article is saved); retried while the API fails."""
    with schema_context(schema_name):
        try:
            return embeddings.passages_embed(article_id=article_id)
        except llm.LLMUnavailable as exc:
            raise self.retry(exc=exc, countdown=min(600, 30 * 2**self.request.retries)) from exc


@shared_task(acks_late=True)
def passages_embed_stale(limit_per_tenant: int = 1000) -> int:
    """The beat job: embed passages still missing an embedding of the current model, tenant by tenant."""
    if not embeddings.model():
        return 0
    done = 0
    for schema_name in Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list(
        "schema_name", flat=True
    ):
        with schema_context(schema_name):
            try:
                done += embeddings.passages_embed(limit=limit_per_tenant)
            except llm.LLMUnavailable:
                logger.warning("passages_embed_stale_failed", schema=schema_name)
    return done
