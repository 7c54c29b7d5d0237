"""Celery tasks of the channels: thin, acknowledged late, safe to run twice. Each loads by id and calls one service.

Every task has time limits and a bounded number of retries; the services' time windows bound how long work
is retried (PAPERCUPS_REPLY_RETRY_SECONDS for the LLM, PAPERCUPS_DELIVERY_GIVE_UP_SECONDS for the channel),
and whatever a task leaves unfinished is a row the periodic sweep queues again. Retries go to the `retries`
queue, behind fresh visitor turns. Run eagerly (no broker), a task does not retry: the reply falls back at
once and the sweep picks undelivered messages up.
"""

from __future__ import annotations

import structlog
from celery import Task, shared_task
from django_tenants.utils import tenant_context

from chat.replies import ReplyUnavailable
from netia import dispatch
from tenants.models import Tenant
from webhooks import services
from webhooks.backoff import retry_delay
from webhooks.channels import DeliveryFailed

logger = structlog.get_logger(__name__)

# Retries are bounded by time windows; these counts only stop a task that somehow outlives them.
_MAX_RETRIES = 40


def _tenant(tenant_id: int) -> Tenant | None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        logger.warning("channel_task_tenant_gone", tenant=tenant_id)
    return tenant


@dispatch.offered
@shared_task(bind=True, acks_late=True, max_retries=_MAX_RETRIES, soft_time_limit=90, time_limit=120)
def channel_reply(self: Task, *, tenant_id: int, conversation_id: int, after_message_id: int | None = None) -> str:
    """The bot's turn in a channel conversation (queued after the quiet period); retries while the LLM is down."""
    tenant = _tenant(tenant_id)
    if tenant is None:
        return "tenant_gone"
    with tenant_context(tenant):
        try:
            return services.channel_conversation_answer(
                tenant=tenant, conversation_id=conversation_id, after_message_id=after_message_id
            )
        except ReplyUnavailable as exc:
            if self.request.is_eager or self.request.retries >= self.max_retries:
                return services.channel_conversation_answer(
                    tenant=tenant, conversation_id=conversation_id, after_message_id=after_message_id, fallback=True
                )
            delay = retry_delay(self.request.retries + 1)
            logger.info("channel_reply_retry", conversation=conversation_id, retry_in=round(delay, 2))
            raise self.retry(countdown=delay, exc=exc, queue=dispatch.RETRIES_QUEUE) from exc


@dispatch.offered
@shared_task(bind=True, acks_late=True, max_retries=_MAX_RETRIES, soft_time_limit=90, time_limit=120)
def channel_deliver(self: Task, *, tenant_id: int, conversation_id: int) -> dict[str, int]:
    """Send a conversation's outbox; comes back later (backoff with jitter) while the channel fails."""
    tenant = _tenant(tenant_id)
    if tenant is None:
        return {}
    with tenant_context(tenant):
        outcome = services.outbox_deliver(tenant=tenant, conversation_id=conversation_id)
    if outcome.retry_in is not None and not self.request.is_eager and self.request.retries < self.max_retries:
        raise self.retry(countdown=outcome.retry_in, queue=dispatch.RETRIES_QUEUE)
    return {"sent": outcome.sent, "failed": outcome.failed, "canceled": outcome.canceled, "paused": outcome.paused}


@dispatch.offered
@shared_task(acks_late=True, soft_time_limit=90, time_limit=120)
def channel_resume(*, tenant_id: int, channel: str) -> dict[str, int] | None:
    """End of a paused channel's pause: probe it with its oldest pending conversation."""
    tenant = _tenant(tenant_id)
    if tenant is None:
        return None
    with tenant_context(tenant):
        outcome = services.channel_probe(tenant=tenant, channel=channel)
    return None if outcome is None else {"sent": outcome.sent, "failed": outcome.failed}


@dispatch.offered
@shared_task(bind=True, acks_late=True, max_retries=3, soft_time_limit=60, time_limit=90)
def channel_conversation_refresh(self: Task, *, tenant_id: int, channel: str, conversation_external_id: str) -> str:
    """Read a conversation back from the channel after it reported a change, and apply what it holds now."""
    tenant = _tenant(tenant_id)
    if tenant is None:
        return "tenant_gone"
    with tenant_context(tenant):
        try:
            return services.channel_conversation_refresh(
                tenant=tenant, channel=channel, conversation_external_id=conversation_external_id
            )
        except DeliveryFailed as exc:
            if not exc.retryable or self.request.is_eager:
                return "unavailable"
            raise self.retry(countdown=retry_delay(self.request.retries + 1), queue=dispatch.RETRIES_QUEUE) from exc


@dispatch.offered
@shared_task(acks_late=True, soft_time_limit=240, time_limit=270)
def channel_reconcile_tenant(*, tenant_id: int, channel: str = "papercups") -> dict[str, int]:
    """Reconcile one tenant's account on a channel (missed webhooks, lost tasks)."""
    tenant = _tenant(tenant_id)
    if tenant is None:
        return {}
    with tenant_context(tenant):
        result = services.channel_reconcile(tenant=tenant, channel=channel)
    return {
        "recorded": result.recorded,
        "replies_queued": result.replies_queued,
        "deliveries_queued": result.deliveries_queued,
        "given_up": result.given_up,
    }


@dispatch.offered
@shared_task(bind=True, acks_late=True, max_retries=_MAX_RETRIES, soft_time_limit=60, time_limit=90)
def inbound_event_process(self: Task, *, event_id: int) -> str:
    """Parse a stored webhook event into the tenant's conversations and messages; retries with backoff (on the
    `retries` queue; the inbound-events sweep queues again what is left)."""
    try:
        return services.inbound_event_process(event_id=event_id)
    except Exception as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            raise
        delay = retry_delay(self.request.retries + 1)
        logger.warning("inbound_event_retry", event=event_id, error=type(exc).__name__, retry_in=round(delay, 2))
        raise self.retry(countdown=delay, exc=exc, queue=dispatch.RETRIES_QUEUE) from exc


@shared_task(soft_time_limit=60, time_limit=90)
def inbound_events_sweep() -> dict[str, int]:
    """The beat job: queue stored events whose processing was lost; delete old processed ones."""
    return services.inbound_events_sweep()


@shared_task(soft_time_limit=60, time_limit=90)
def channel_reconcile_all(*, channel: str = "papercups") -> int:
    """A channel's beat job: queue one reconciliation per connected tenant."""
    return services.channel_reconcile_all(channel=channel)
