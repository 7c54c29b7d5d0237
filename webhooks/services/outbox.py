"""The outbox: deliver the bot's messages and handoff calls to the channel, each exactly once.

Each attempt is recorded (status `sending`, attempts + 1) and committed before the request leaves; an
attempt whose outcome is unknown is looked up in the channel (by the Netia id in its metadata) before
anything is sent again; one sender per conversation holds a PostgreSQL advisory lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.leads import redact_contact_details
from chat.models import Conversation, Message
from chat.selectors import conversation_contact_values
from netia.fields import max_length
from netia.metrics import DELIVERIES
from netia.tenancy import current_schema
from tenants.models import Tenant
from webhooks.backoff import retry_delay, retry_delay_since
from webhooks.channels import ChannelAdapter, DeliveryFailed, OutboundMessage
from webhooks.models import FailedDelivery
from webhooks.services.queueing import channel_adapter_for, delivery_queue

logger = structlog.get_logger(__name__)

_PREVIEW_MAX = max_length(FailedDelivery, "content_preview")
# Error texts are TextFields: a bound of our own, so a huge error page from a channel is not stored whole.
_ERROR_MAX = 2000


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one pass over a conversation's outbox did; `retry_in` (seconds) asks the task to come back."""

    sent: int = 0
    failed: int = 0
    retry_in: float | None = None
    busy: bool = False


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def _sender_lock(conversation_id: int) -> Iterator[bool]:
    """A session-level advisory lock: one sender per conversation; PostgreSQL drops it if the worker dies."""
    key = _lock_key(f"netia:outbox:{current_schema()}:{conversation_id}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _give_up_at(start: datetime) -> datetime:
    return start + timedelta(seconds=settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS)


def failed_delivery_record(
    *, tenant: Tenant, conversation: Conversation, kind: str, error: str, message: Message | None = None
) -> None:
    """Make a give-up visible to staff (public schema) and in metrics."""
    fields: dict[str, Any] = {
        "channel": conversation.channel,
        "conversation_id": conversation.pk,
        "conversation_external_id": conversation.external_id,
        # The public schema is read by staff across tenants: the preview carries no visitor contact details.
        "content_preview": redact_contact_details(
            message.content if message else "", known=conversation_contact_values(conversation=conversation)
        )[:_PREVIEW_MAX],
        "error": error[:_ERROR_MAX],
        "attempts": message.delivery_attempts if message else 0,
        "failed_at": timezone.now(),
        "retried_at": None,
    }
    if message is not None:
        FailedDelivery.objects.update_or_create(
            tenant=tenant, message_public_id=message.public_id, defaults={"kind": FailedDelivery.Kind.MESSAGE, **fields}
        )
    else:
        FailedDelivery.objects.update_or_create(
            tenant=tenant, conversation_id=conversation.pk, kind=FailedDelivery.Kind.HANDOFF, defaults=fields
        )
    DELIVERIES.labels(channel=conversation.channel, outcome="failed").inc()
    logger.warning(
        "channel_delivery_failed", channel=conversation.channel, conversation=conversation.pk, kind=kind, error=error
    )


def _mark_sent(*, conversation: Conversation, message: Message, external_id: str, outcome: str) -> None:
    Message.objects.filter(pk=message.pk).update(
        delivery_status=Message.Delivery.SENT, external_id=external_id, delivered_at=timezone.now(), delivery_error=""
    )
    DELIVERIES.labels(channel=conversation.channel, outcome=outcome).inc()


def _mark_failed(*, tenant: Tenant, conversation: Conversation, message: Message, error: str) -> None:
    Message.objects.filter(pk=message.pk).update(
        delivery_status=Message.Delivery.FAILED, delivery_error=error[:_ERROR_MAX]
    )
    message.refresh_from_db(fields=["delivery_attempts"])
    failed_delivery_record(
        tenant=tenant, conversation=conversation, kind=FailedDelivery.Kind.MESSAGE, error=error, message=message
    )


def _message_deliver(
    *, tenant: Tenant, adapter: ChannelAdapter, conversation: Conversation, message: Message
) -> float | None:
    """One outbox message: sent, found already sent, or failed for good (None), or retry in N seconds."""
    outbound = OutboundMessage(
        netia_message_id=message.public_id,
        conversation_external_id=conversation.external_id,
        content=message.content,
        private=message.private,
    )
    deadline = message.delivery_deadline or _give_up_at(message.created_at)

    def attempt_failed(error: DeliveryFailed) -> float | None:
        Message.objects.filter(pk=message.pk).update(delivery_error=error.detail[:_ERROR_MAX])
        if not error.retryable or timezone.now() >= deadline:
            reason = error.detail if not error.retryable else f"Gave up after the retry window: {error.detail}"
            _mark_failed(tenant=tenant, conversation=conversation, message=message, error=reason)
            return None
        DELIVERIES.labels(channel=conversation.channel, outcome="retry").inc()
        return retry_delay(message.delivery_attempts)

    if message.delivery_status == Message.Delivery.SENDING:
        # The last attempt's outcome is unknown (error, timeout, or a worker killed mid-send): look first.
        try:
            found = adapter.find_sent(outbound)
        except DeliveryFailed as error:
            return attempt_failed(error)
        if found:
            _mark_sent(conversation=conversation, message=message, external_id=found, outcome="already_sent")
            return None
    if timezone.now() >= deadline:
        reason = f"Gave up after the retry window: {message.delivery_error or 'never sent'}"
        _mark_failed(tenant=tenant, conversation=conversation, message=message, error=reason)
        return None
    # Record the attempt and commit it before the request leaves: a crash from here on leaves `sending`.
    Message.objects.filter(pk=message.pk).update(
        delivery_status=Message.Delivery.SENDING,
        delivery_attempts=F("delivery_attempts") + 1,
        delivery_attempted_at=timezone.now(),
    )
    message.refresh_from_db(fields=["delivery_status", "delivery_attempts"])
    try:
        external_id = adapter.send(outbound)
    except DeliveryFailed as error:
        return attempt_failed(error)
    _mark_sent(conversation=conversation, message=message, external_id=external_id, outcome="sent")
    return None


def _handoff_deliver(*, tenant: Tenant, adapter: ChannelAdapter, conversation: Conversation) -> float | None:
    """Tell the channel about the handoff once the messages are out; None when done or given up."""
    since = conversation.handed_off_at or timezone.now()
    retried = conversation.metadata.get("handoff_retry_since") if isinstance(conversation.metadata, dict) else None
    if isinstance(retried, str):
        with contextlib.suppress(ValueError):
            since = max(since, datetime.fromisoformat(retried))
    try:
        adapter.hand_off(conversation_external_id=conversation.external_id)
    except DeliveryFailed as error:
        now = timezone.now()
        if error.retryable and now < _give_up_at(since):
            DELIVERIES.labels(channel=conversation.channel, outcome="retry").inc()
            return retry_delay_since((now - since).total_seconds())
        Conversation.objects.filter(pk=conversation.pk).update(handoff_sync_pending=False)
        failed_delivery_record(
            tenant=tenant, conversation=conversation, kind=FailedDelivery.Kind.HANDOFF, error=error.detail
        )
        return None
    Conversation.objects.filter(pk=conversation.pk).update(handoff_sync_pending=False)
    DELIVERIES.labels(channel=conversation.channel, outcome="handoff").inc()
    return None


def outbox_deliver(*, tenant: Tenant, conversation_id: int) -> DeliveryOutcome:
    """Send the conversation's pending bot messages in order, then the handoff call (caller in the tenant's schema).

    Must run outside a transaction: each attempt is committed before its request is sent.
    """
    if connection.in_atomic_block:
        raise RuntimeError("outbox_deliver commits each attempt before sending: call it outside a transaction")
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return DeliveryOutcome()
    adapter = channel_adapter_for(tenant=tenant, channel=conversation.channel)
    sent = failed = 0
    with _sender_lock(conversation_id) as acquired:
        if not acquired:
            return DeliveryOutcome(busy=True, retry_in=1.0)
        outbox = Message.objects.filter(
            conversation_id=conversation_id, delivery_status__in=[Message.Delivery.PENDING, Message.Delivery.SENDING]
        ).order_by("id")
        while (message := outbox.first()) is not None:
            retry_in = _message_deliver(tenant=tenant, adapter=adapter, conversation=conversation, message=message)
            if retry_in is not None:
                return DeliveryOutcome(sent=sent, failed=failed, retry_in=retry_in)
            message.refresh_from_db(fields=["delivery_status"])
            if message.delivery_status == Message.Delivery.SENT:
                sent += 1
            else:
                failed += 1
        conversation.refresh_from_db()
        if conversation.handoff_sync_pending:
            retry_in = _handoff_deliver(tenant=tenant, adapter=adapter, conversation=conversation)
            if retry_in is not None:
                return DeliveryOutcome(sent=sent, failed=failed, retry_in=retry_in)
    return DeliveryOutcome(sent=sent, failed=failed)


def failed_delivery_retry(*, failed: FailedDelivery) -> bool:
    """Staff retry of something given up: it gets a fresh retry window and is queued again. False if gone."""
    now = timezone.now()
    with tenant_context(failed.tenant):
        if failed.kind == FailedDelivery.Kind.MESSAGE and failed.message_public_id is not None:
            queued = Message.objects.filter(
                public_id=failed.message_public_id, delivery_status=Message.Delivery.FAILED
            ).update(delivery_status=Message.Delivery.PENDING, delivery_deadline=_give_up_at(now), delivery_error="")
        else:
            conversation = Conversation.objects.filter(pk=failed.conversation_id).first()
            queued = 0
            if conversation is not None:
                conversation.metadata = {**(conversation.metadata or {}), "handoff_retry_since": now.isoformat()}
                conversation.handoff_sync_pending = True
                conversation.save(update_fields=["metadata", "handoff_sync_pending", "updated_at"])
                queued = 1
        if queued:
            delivery_queue(tenant=failed.tenant, conversation_id=failed.conversation_id)
    FailedDelivery.objects.filter(pk=failed.pk).update(retried_at=now)
    return bool(queued)
