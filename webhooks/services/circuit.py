"""Per-tenant backoff for a channel account that keeps failing (a circuit breaker).

While a tenant's channel is unreachable, its deliveries stop calling it (they return at once, costing no
worker time) instead of each retrying with its own timeout and filling the queue; one probe (and only the
probe) tries again after a growing pause, and its success queues every pending delivery of that tenant again.
The sweep schedules a probe again if the scheduled one was lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from netia.metrics import CHANNEL_CIRCUITS_OPENED
from tenants.models import Tenant
from webhooks.backoff import retry_delay
from webhooks.models import ChannelCircuit
from webhooks.services.queueing import resume_queue

logger = structlog.get_logger(__name__)


def circuit_open_until(*, tenant: Tenant, channel: str) -> datetime | None:
    """When the paused channel is probed next (possibly past), or None when calls to it may go ahead.

    A pause ends only when a probe succeeds, not when its time is up: until then, only the probe calls.
    """
    paused = ChannelCircuit.objects.filter(
        tenant=tenant, channel=channel, failures__gte=settings.CHANNEL_CIRCUIT_FAILURES
    ).values_list("open_until", flat=True)
    for probe_at in paused:
        return probe_at or timezone.now()
    return None


def circuit_failure(*, tenant: Tenant, channel: str, error: str) -> datetime | None:
    """Count a retryable failure; returns until when the channel is now paused (None: not paused).

    After CHANNEL_CIRCUIT_FAILURES failures in a row the channel pauses for the backoff of the failures past
    that threshold (PAPERCUPS_RETRY_* settings), and one probe is scheduled for the end of the pause.
    """
    now = timezone.now()
    with transaction.atomic():
        circuit, _ = ChannelCircuit.objects.select_for_update().get_or_create(tenant=tenant, channel=channel)
        circuit.failures += 1
        circuit.last_error = error[:2000]
        opened = None
        probe_scheduled = circuit.open_until is not None and circuit.open_until > now
        if circuit.failures >= settings.CHANNEL_CIRCUIT_FAILURES and not probe_scheduled:
            pause = retry_delay(circuit.failures - settings.CHANNEL_CIRCUIT_FAILURES + 1)
            circuit.open_until = opened = now + timedelta(seconds=pause)
            resume_queue(tenant=tenant, channel=channel, countdown=pause)
        circuit.save()
    if opened is not None:
        CHANNEL_CIRCUITS_OPENED.labels(channel=channel).inc()
        logger.warning(
            "channel_paused", tenant=tenant.pk, channel=channel, failures=circuit.failures, until=opened.isoformat()
        )
    return opened


def circuit_success(*, tenant: Tenant, channel: str) -> bool:
    """The channel answered: forget its failures; True if it had been paused (the caller resumes its work)."""
    failing = ChannelCircuit.objects.filter(tenant=tenant, channel=channel, failures__gt=0)
    recovered = failing.filter(open_until__isnull=False).update(failures=0, open_until=None, last_error="")
    failing.update(failures=0, last_error="")
    if recovered:
        logger.info("channel_resumed", tenant=tenant.pk, channel=channel)
    return bool(recovered)
