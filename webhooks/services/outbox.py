"""The outbox: deliver the bot's messages and handoff calls to the channel, each exactly once.

Each pass first reads the conversation from the channel: if a human has taken it or it was closed (which
Netia may never have been told: dashboard-made Papercups webhooks lack `conversation:updated`), the bot
stands down locally and sends nothing more there. Each attempt is recorded (status `sending`, attempts + 1)
and committed before the request leaves; an attempt whose outcome is unknown is found in that reading (by
the Netia id in its metadata) before anything is sent again; one sender per conversation holds a
PostgreSQL advisory lock. While the tenant's channel is paused (per-tenant backoff) a pass calls nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.leads import redact_contact_details
from chat.models import Conversation, Message
from chat.selectors import conversation_contact_values
from netia.fields import max_length
from netia.locks import advisory_lock
from netia.metrics import DELIVERIES
from netia.tenancy import current_schema
from tenants.models import Tenant
from webhooks.backoff import retry_delay, retry_delay_since
from webhooks.channels import ChannelAdapter, DeliveryFailed, OutboundMessage, RemoteConversation
from webhooks.models import FailedDelivery
from webhooks.services.circuit import circuit_failure, circuit_open_until, circuit_success
from webhooks.services.inbound import channel_conversation_sync
from webhooks.services.queueing import channel_adapter_for, delivery_queue

logger = structlog.get_logger(__name__)

_PREVIEW_MAX = max_length(FailedDelivery, "content_preview")
# Error texts are TextFields: a bound of our own, so a huge error page from a channel is not stored whole.
_ERROR_MAX = 2000
_OUTBOX = (Message.Delivery.PENDING, Message.Delivery.SENDING)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one pass over a conversation's outbox did; `retry_in` (seconds) asks the task to come back.

    `paused`: the tenant's channel is paused; nothing was sent and the channel's probe resumes the work.
    """

    sent: int = 0
    failed: int = 0
    canceled: int = 0
    retry_in: float | None = None
    busy: bool = False
    paused: bool = False


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
    if message is not None and kind == FailedDelivery.Kind.MESSAGE:
        FailedDelivery.objects.update_or_create(
            tenant=tenant, message_public_id=message.public_id, defaults={"kind": kind, **fields}
        )
    else:
        FailedDelivery.objects.update_or_create(
            tenant=tenant, conversation_id=conversation.pk, kind=kind, defaults=fields
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


def _deadline(message: Message) -> datetime:
    return message.delivery_deadline or _give_up_at(message.created_at)


def _channel_failed(*, tenant: Tenant, conversation: Conversation, error: DeliveryFailed) -> None:
    if error.retryable:
        circuit_failure(tenant=tenant, channel=conversation.channel, error=error.detail)


def _attempt_failed(
    *, tenant: Tenant, conversation: Conversation, message: Message, error: DeliveryFailed
) -> float | None:
    """After a failed call about `message`: give up (None) or retry in N seconds."""
    _channel_failed(tenant=tenant, conversation=conversation, error=error)
    Message.objects.filter(pk=message.pk).update(delivery_error=error.detail[:_ERROR_MAX])
    if not error.retryable or timezone.now() >= _deadline(message):
        reason = error.detail if not error.retryable else f"Gave up after the retry window: {error.detail}"
        _mark_failed(tenant=tenant, conversation=conversation, message=message, error=reason)
        return None
    DELIVERIES.labels(channel=conversation.channel, outcome="retry").inc()
    return retry_delay(message.delivery_attempts)


def _message_deliver(
    *, tenant: Tenant, adapter: ChannelAdapter, conversation: Conversation, message: Message, remote: RemoteConversation
) -> float | None:
    """One outbox message: sent, found already sent, or failed for good (None), or retry in N seconds."""
    already = remote.sent.get(str(message.public_id))
    if already:  # an earlier attempt whose outcome we never learnt did reach the channel
        _mark_sent(conversation=conversation, message=message, external_id=already, outcome="already_sent")
        return None
    if timezone.now() >= _deadline(message):
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
    outbound = OutboundMessage(
        netia_message_id=message.public_id,
        conversation_external_id=conversation.external_id,
        content=message.content,
        private=message.private,
    )
    try:
        external_id = adapter.send(outbound)
    except DeliveryFailed as error:
        return _attempt_failed(tenant=tenant, conversation=conversation, message=message, error=error)
    _mark_sent(conversation=conversation, message=message, external_id=external_id, outcome="sent")
    return None


def _handoff_failed(*, tenant: Tenant, conversation: Conversation, error: DeliveryFailed) -> float | None:
    """After a failed call about the handoff: give up (None, recorded for staff) or retry in N seconds."""
    _channel_failed(tenant=tenant, conversation=conversation, error=error)
    since = conversation.handed_off_at or timezone.now()
    retried = conversation.metadata.get("handoff_retry_since") if isinstance(conversation.metadata, dict) else None
    if isinstance(retried, str):
        with contextlib.suppress(ValueError):
            since = max(since, datetime.fromisoformat(retried))
    now = timezone.now()
    if error.retryable and now < _give_up_at(since):
        DELIVERIES.labels(channel=conversation.channel, outcome="retry").inc()
        return retry_delay_since((now - since).total_seconds())
    Conversation.objects.filter(pk=conversation.pk).update(handoff_sync_pending=False)
    failed_delivery_record(
        tenant=tenant, conversation=conversation, kind=FailedDelivery.Kind.HANDOFF, error=error.detail
    )
    return None


def _handoff_deliver(
    *, tenant: Tenant, adapter: ChannelAdapter, conversation: Conversation, remote: RemoteConversation
) -> float | None:
    """Tell the channel about the handoff once the messages are out; None when done or given up.

    Not when a human has the conversation already (unassigning would take it from them) or it is closed.
    """
    done = Conversation.objects.filter(pk=conversation.pk)
    if remote.state.assigned_to_human or remote.state.closed:
        done.update(handoff_sync_pending=False)
        return None
    try:
        adapter.hand_off(conversation_external_id=conversation.external_id)
    except DeliveryFailed as error:
        return _handoff_failed(tenant=tenant, conversation=conversation, error=error)
    if not remote.reached:
        _channel_answered(tenant=tenant, channel=conversation.channel)
    done.update(handoff_sync_pending=False)
    DELIVERIES.labels(channel=conversation.channel, outcome="handoff").inc()
    return None


def _stand_down(*, conversation: Conversation, closed: bool) -> int:
    """A human has the conversation (or it is closed): withdraw what the bot has not sent yet; how many.

    Private notes for the agents still go to a conversation a human has.
    """
    unsent = Message.objects.filter(conversation=conversation, delivery_status__in=_OUTBOX)
    if not closed:
        unsent = unsent.filter(private=False)
    canceled = unsent.update(delivery_status=Message.Delivery.CANCELED)
    if canceled:
        DELIVERIES.labels(channel=conversation.channel, outcome="canceled").inc(canceled)
        logger.info("channel_delivery_withdrawn", conversation=conversation.pk, messages=canceled, closed=closed)
    return canceled


def _expire_overdue(*, tenant: Tenant, conversation: Conversation) -> int:
    """While the channel is paused: fail the messages past their retry window (no call needed); how many."""
    failed = 0
    for message in Message.objects.filter(conversation=conversation, delivery_status__in=_OUTBOX):
        if timezone.now() >= _deadline(message):
            reason = f"Gave up after the retry window: {message.delivery_error or 'the channel was unreachable'}"
            _mark_failed(tenant=tenant, conversation=conversation, message=message, error=reason)
            failed += 1
    return failed


def _channel_answered(*, tenant: Tenant, channel: str) -> None:
    """A call reached the channel: its failures are forgotten, and its paused work resumes."""
    if circuit_success(tenant=tenant, channel=channel):
        deliveries_resume(tenant=tenant, channel=channel)


def _read(
    *, tenant: Tenant, adapter: ChannelAdapter, conversation: Conversation, first: Message | None
) -> tuple[RemoteConversation | None, float | None]:
    """The conversation as the channel holds it, applied locally; (None, retry in N s or None: given up) when
    it cannot be read."""
    observed_at = timezone.now()
    try:
        remote = adapter.conversation_read(conversation_external_id=conversation.external_id)
    except DeliveryFailed as error:
        if first is not None:
            return None, _attempt_failed(tenant=tenant, conversation=conversation, message=first, error=error)
        return None, _handoff_failed(tenant=tenant, conversation=conversation, error=error)
    if remote.reached:
        _channel_answered(tenant=tenant, channel=conversation.channel)
    channel_conversation_sync(channel=conversation.channel, state=remote.state, observed_at=observed_at)
    return remote, None


def outbox_deliver(*, tenant: Tenant, conversation_id: int, probe: bool = False) -> DeliveryOutcome:
    """Send the conversation's pending bot messages in order, then the handoff call (caller in the tenant's schema).

    Must run outside a transaction: each attempt is committed before its request is sent. While the tenant's
    channel is paused only its probe (`probe`) calls the channel.
    """
    if connection.in_atomic_block:
        raise RuntimeError("outbox_deliver commits each attempt before sending: call it outside a transaction")
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return DeliveryOutcome()
    adapter = channel_adapter_for(tenant=tenant, channel=conversation.channel)
    sent = failed = canceled = 0
    with advisory_lock(f"netia:outbox:{current_schema()}:{conversation_id}") as acquired:
        if not acquired:
            return DeliveryOutcome(busy=True, retry_in=1.0)
        if not probe and circuit_open_until(tenant=tenant, channel=conversation.channel) is not None:
            return DeliveryOutcome(failed=_expire_overdue(tenant=tenant, conversation=conversation), paused=True)
        outbox = Message.objects.filter(conversation_id=conversation_id, delivery_status__in=_OUTBOX).order_by("id")
        first = outbox.first()
        if first is None and not conversation.handoff_sync_pending:
            return DeliveryOutcome()
        remote, retry_in = _read(tenant=tenant, adapter=adapter, conversation=conversation, first=first)
        if remote is None:
            given_up = retry_in is None
            if given_up and outbox.exists():  # that message was given up: the next ones get their turn
                retry_in = 0.5
            return DeliveryOutcome(failed=int(given_up), retry_in=retry_in)
        if remote.state.assigned_to_human or remote.state.closed:
            canceled = _stand_down(conversation=conversation, closed=bool(remote.state.closed))
        while (message := outbox.first()) is not None:
            retry_in = _message_deliver(
                tenant=tenant, adapter=adapter, conversation=conversation, message=message, remote=remote
            )
            if retry_in is not None:
                return DeliveryOutcome(sent=sent, failed=failed, canceled=canceled, retry_in=retry_in)
            message.refresh_from_db(fields=["delivery_status"])
            if message.delivery_status == Message.Delivery.SENT:
                if not remote.reached and not sent:  # the read asked nothing: this send is the channel answering
                    _channel_answered(tenant=tenant, channel=conversation.channel)
                sent += 1
            else:
                failed += 1
        conversation.refresh_from_db()
        if conversation.handoff_sync_pending:
            retry_in = _handoff_deliver(tenant=tenant, adapter=adapter, conversation=conversation, remote=remote)
            if retry_in is not None:
                return DeliveryOutcome(sent=sent, failed=failed, canceled=canceled, retry_in=retry_in)
    return DeliveryOutcome(sent=sent, failed=failed, canceled=canceled)


def deliveries_pending(*, channel: str) -> list[int]:
    """Conversations of the channel with messages or a handoff call still to deliver (caller in the schema)."""
    with_messages = Message.objects.filter(channel=channel, delivery_status__in=_OUTBOX).values_list(
        "conversation_id", flat=True
    )
    with_handoff = Conversation.objects.filter(channel=channel, handoff_sync_pending=True).values_list("pk", flat=True)
    return sorted(set(with_messages) | set(with_handoff))


def deliveries_resume(*, tenant: Tenant, channel: str) -> int:
    """The tenant's channel answers again: queue every conversation with something still to deliver."""
    conversations = deliveries_pending(channel=channel)
    for conversation_id in conversations:
        delivery_queue(tenant=tenant, conversation_id=conversation_id, retry=True)
    return len(conversations)


def resume_now(*, tenant: Tenant, channel: str) -> int:
    """Staff: end a channel's pause at once (its failures forgotten); returns how many conversations were queued."""
    circuit_success(tenant=tenant, channel=channel)
    with tenant_context(tenant):
        return deliveries_resume(tenant=tenant, channel=channel)


def channel_probe(*, tenant: Tenant, channel: str) -> DeliveryOutcome | None:
    """End of a channel's pause: deliver the oldest pending conversation (a success resumes the rest, a failure
    pauses the channel longer); None when nothing is pending any more (the pause is lifted)."""
    pending = deliveries_pending(channel=channel)
    if not pending:
        circuit_success(tenant=tenant, channel=channel)
        return None
    return outbox_deliver(tenant=tenant, conversation_id=pending[0], probe=True)


def failed_delivery_retry(*, failed: FailedDelivery) -> bool:
    """Staff retry of something given up: it gets a fresh retry window and is queued again. False if gone."""
    now = timezone.now()
    with tenant_context(failed.tenant):
        if failed.kind == FailedDelivery.Kind.MESSAGE and failed.message_public_id is not None:
            queued = Message.objects.filter(
                public_id=failed.message_public_id, delivery_status=Message.Delivery.FAILED
            ).update(delivery_status=Message.Delivery.PENDING, delivery_deadline=_give_up_at(now), delivery_error="")
        elif failed.kind == FailedDelivery.Kind.HANDOFF:
            conversation = Conversation.objects.filter(pk=failed.conversation_id).first()
            queued = 0
            if conversation is not None:
                conversation.metadata = {**(conversation.metadata or {}), "handoff_retry_since": now.isoformat()}
                conversation.handoff_sync_pending = True
                conversation.save(update_fields=["metadata", "handoff_sync_pending", "updated_at"])
                queued = 1
        else:  # a turn given up was handed to the team: its note and handoff are delivered like any other
            queued = int(Conversation.objects.filter(pk=failed.conversation_id).exists())
        if queued:
            delivery_queue(tenant=failed.tenant, conversation_id=failed.conversation_id)
    FailedDelivery.objects.filter(pk=failed.pk).update(retried_at=now)
    return bool(queued)
