"""Raw inbound webhook events, for every channel: stored once by the request, processed by a worker.

The request's whole job is `inbound_event_store` (one INSERT … ON CONFLICT DO NOTHING, unique on the
channel and the event's key) and queueing `inbound_event_process`, which runs the channel's processor (parse,
store conversations and messages in the tenant's schema, queue the bot's turn) and records the outcome.
A processor is safe to run twice (messages are stored once, keyed on the channel's ids). Events whose task
was lost (broker down at publish time, worker killed) are queued again by `inbound_events_sweep`, which also
deletes processed events after INBOUND_EVENT_RETENTION_DAYS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context

from netia import dispatch
from tenants.models import Tenant
from webhooks.models import InboundEvent

logger = structlog.get_logger(__name__)

PROCESS_TASK = "webhooks.tasks.inbound_event_process"
SWEEP_BATCH = 500

# channel -> processor(tenant, event) -> outcome; each channel module registers its own (in the tenant's schema).
Processor = Callable[[Tenant, InboundEvent], str]
PROCESSORS: dict[str, Processor] = {}


def processor_register(channel: str) -> Callable[[Processor], Processor]:
    """Register the function that processes a channel's stored events (a decorator)."""

    def register(processor: Processor) -> Processor:
        PROCESSORS[channel] = processor
        return processor

    return register


_INSERT = (
    f'INSERT INTO "{InboundEvent._meta.db_table}" '  # noqa: S608 - table name from the model, values bound
    "(channel, key, tenant_id, event, payload, received_at, attempts, outcome, error) "
    "VALUES (%s, %s, %s, %s, %s::jsonb, %s, 0, '', '') ON CONFLICT (channel, key) DO NOTHING RETURNING id"
)


def inbound_event_store(*, tenant: Tenant, channel: str, key: str, event: str, raw_body: bytes) -> int | None:
    """Store a webhook event once and queue its processing; its id, or None if it was stored before.

    One statement: a duplicate is told apart by the insert returning no row (no error, no savepoint). The
    body is stored as received (already checked to be JSON by the caller).
    """
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [channel, key, tenant.pk, event, raw_body.decode(), timezone.now()])
        row = cursor.fetchone()
    if row is None:
        return None
    event_id = int(row[0])
    dispatch.enqueue_light_on_commit(PROCESS_TASK, event_id=event_id)  # one LPUSH: the ack's hot path
    return event_id


def inbound_event_process(*, event_id: int) -> str:
    """Process a stored event in its tenant's schema (the worker's side); returns the outcome.

    Already processed: its recorded outcome, nothing done again. A failure is recorded on the event and
    raised (the task retries; the sweep catches what is left).
    """
    event = InboundEvent.objects.select_related("tenant").filter(pk=event_id).first()
    if event is None:
        return "gone"
    if event.processed_at is not None:
        return event.outcome
    InboundEvent.objects.filter(pk=event_id).update(attempts=F("attempts") + 1)
    try:
        with tenant_context(event.tenant):
            outcome = PROCESSORS[event.channel](event.tenant, event)
    except Exception as error:
        InboundEvent.objects.filter(pk=event_id).update(error=f"{type(error).__name__}: {error}"[:2000])
        raise
    InboundEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(
        processed_at=timezone.now(), outcome=outcome, error=""
    )
    return outcome


def inbound_events_sweep(*, now: Any = None) -> dict[str, int]:
    """Queue again the events left unprocessed past PAPERCUPS_SWEEP_GRACE_SECONDS; delete old processed ones."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.PAPERCUPS_SWEEP_GRACE_SECONDS)
    pending = list(
        InboundEvent.objects.filter(processed_at__isnull=True, received_at__lt=stale)
        .order_by("received_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for event_id in pending:  # behind fresh work: these come back after a failure or a lost task
        dispatch.enqueue_safely(PROCESS_TASK, queue=dispatch.RETRIES_QUEUE, event_id=event_id)
    retention = now - timedelta(days=settings.INBOUND_EVENT_RETENTION_DAYS)
    deleted, _ = InboundEvent.objects.filter(processed_at__lt=retention).delete()
    if pending or deleted:
        logger.info("inbound_events_swept", requeued=len(pending), deleted=deleted)
    return {"requeued": len(pending), "deleted": deleted}
