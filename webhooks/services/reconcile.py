"""Catching up: Papercups drops webhooks it cannot deliver, tasks get lost (a broker restarted, a publish that
failed, a worker killed), and a conversation's state changes without a webhook. Netia reads back what it
missed, and a sweep queues again every piece of work no task is taking care of, whatever its age, until it
is answered, given up (recorded for staff) or handed off."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from chat.models import Conversation, Message
from chat.replies import conversation_give_up, visitor_messages_unanswered
from chat.services import message_mark_answered
from netia.metrics import SWEEP_REQUEUED
from tenants.models import Tenant
from webhooks.channels import Author, DeliveryFailed, InboundMessage
from webhooks.models import FailedDelivery
from webhooks.selectors import channel_tenants_connected
from webhooks.services.circuit import circuit_open_until
from webhooks.services.inbound import channel_conversation_sync, message_record
from webhooks.services.outbox import failed_delivery_record
from webhooks.services.queueing import (
    channel_adapter_for,
    delivery_queue,
    reconcile_queue,
    reply_queue,
    resume_queue,
)

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconciliation of a tenant did."""

    recorded: int
    replies_queued: int
    deliveries_queued: int
    channel_error: str = ""
    given_up: int = 0


def _local_message_for(item: InboundMessage, *, channel: str) -> Message | None:
    """The local bot message an echo of ours stands for (by the channel's id, else our id in its metadata)."""
    condition = Q(channel=channel, external_id=item.external_id)
    with contextlib.suppress(ValueError):
        condition |= Q(public_id=uuid.UUID(item.netia_message_id))
    return Message.objects.filter(condition, role=Message.Role.BOT).first()


def _reconcile_remote(*, channel: str, remote: list[InboundMessage]) -> tuple[int, dict[int, int]]:
    """Store the messages we never heard of, oldest first; returns (stored, {conversation: newest visitor msg}).

    A missed visitor message followed in the channel by one of our replies was answered there (that reply came
    after it): it is linked to that reply instead of being answered again.
    """
    known = set(
        Message.objects.filter(channel=channel, external_id__in=[m.external_id for m in remote]).values_list(
            "external_id", flat=True
        )
    )
    threads: dict[str, list[InboundMessage]] = {}
    for item in remote:
        threads.setdefault(item.conversation_external_id, []).append(item)
    stored = 0
    to_answer: dict[int, int] = {}
    for items in threads.values():
        for position, item in enumerate(items):
            if item.external_id in known:
                continue
            recorded, created = message_record(channel=channel, message=item)
            if recorded is None or not created:
                continue
            stored += 1
            if recorded.role != Message.Role.VISITOR:
                continue
            later_reply = next(
                (
                    local
                    for later in items[position + 1 :]
                    if later.author == Author.SELF and (local := _local_message_for(later, channel=channel))
                ),
                None,
            )
            if later_reply is not None:
                message_mark_answered(message=recorded, answer=later_reply)
            else:
                to_answer[recorded.conversation_id] = recorded.pk
    return stored, to_answer


def _turns_sweep(*, tenant: Tenant, channel: str, to_answer: dict[int, int]) -> tuple[int, int]:
    """Queue every unanswered visitor turn again (any age), or give up on those past the give-up window:
    the conversation goes to the team with a note, recorded for staff. Returns (queued, given up)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.PAPERCUPS_SWEEP_GRACE_SECONDS)
    give_up_before = now - timedelta(seconds=settings.PAPERCUPS_TURN_GIVE_UP_SECONDS)
    oldest: dict[int, datetime] = {}
    for conversation_id, created_at in (
        visitor_messages_unanswered()
        .filter(
            channel=channel,
            conversation__status=Conversation.Status.BOT,
            created_at__lt=now - grace,
        )
        .values_list("conversation_id", "created_at")
    ):
        oldest[conversation_id] = min(created_at, oldest.get(conversation_id, created_at))
    given_up = 0
    for conversation_id, created_at in oldest.items():
        if created_at < give_up_before:
            result = conversation_give_up(conversation_id=conversation_id, reason="bot_gave_up", deliver=True)
            if result is not None:
                failed_delivery_record(
                    tenant=tenant,
                    conversation=result.conversation,
                    kind=FailedDelivery.Kind.TURN,
                    error=f"No reply within {settings.PAPERCUPS_TURN_GIVE_UP_SECONDS:g} s: handed to the team.",
                    message=result.visitor_messages[-1],
                )
                delivery_queue(tenant=tenant, conversation_id=conversation_id, retry=True)
                given_up += 1
            continue
        to_answer.setdefault(conversation_id, 0)
    queued = 0
    for conversation_id, newest in to_answer.items():
        if Conversation.objects.filter(pk=conversation_id, status=Conversation.Status.BOT).exists():
            reply_queue(
                tenant=tenant,
                conversation_id=conversation_id,
                after_message_id=newest or None,
                countdown=settings.PAPERCUPS_QUIET_PERIOD_SECONDS if newest else 0,
                retry=not newest,
            )
            queued += 1
    return queued, given_up


def _deliveries_sweep(*, tenant: Tenant, channel: str) -> int:
    """Queue again the deliveries and handoff calls no task is taking care of (not while the channel is paused:
    its probe resumes them)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.PAPERCUPS_SWEEP_GRACE_SECONDS)
    probe_at = circuit_open_until(tenant=tenant, channel=channel)
    if probe_at is not None:
        if probe_at < now - grace:  # the scheduled probe was lost (a broker restart): schedule it again
            resume_queue(tenant=tenant, channel=channel, countdown=0)
        return 0
    stalled = now - grace - timedelta(seconds=settings.PAPERCUPS_RETRY_MAX_SECONDS)
    stuck = set(
        Message.objects.filter(
            channel=channel, delivery_status__in=[Message.Delivery.PENDING, Message.Delivery.SENDING]
        )
        .filter(
            Q(delivery_attempted_at__isnull=True, created_at__lt=now - grace) | Q(delivery_attempted_at__lt=stalled)
        )
        .values_list("conversation_id", flat=True)
    )
    stuck |= set(
        Conversation.objects.filter(channel=channel, handoff_sync_pending=True, updated_at__lt=stalled).values_list(
            "pk", flat=True
        )
    )
    for conversation_id in stuck:
        delivery_queue(tenant=tenant, conversation_id=conversation_id, retry=True)
    return len(stuck)


def channel_reconcile(*, tenant: Tenant, channel: str = Conversation.Channel.PAPERCUPS) -> ReconcileResult:
    """Catch up on what webhooks missed and on work whose task was lost (caller in the tenant's schema).

    1. Messages of the last PAPERCUPS_RECONCILE_WINDOW_SECONDS that the channel has and we do not are stored
       (idempotently, as the webhook would) and new visitor turns answered, once.
    2. Sweep: unanswered visitor turns, undelivered outbox messages and handoff calls older than
       PAPERCUPS_SWEEP_GRACE_SECONDS that no task is taking care of are queued again, whatever their age;
       turns unanswered past PAPERCUPS_TURN_GIVE_UP_SECONDS go to the team instead.
    """
    window = timedelta(seconds=settings.PAPERCUPS_RECONCILE_WINDOW_SECONDS)
    channel_error = ""
    remote: list[InboundMessage] = []
    if circuit_open_until(tenant=tenant, channel=channel) is None:
        try:
            remote = channel_adapter_for(tenant=tenant, channel=channel).recent_messages(since=timezone.now() - window)
        except DeliveryFailed as error:
            channel_error = error.detail
            logger.warning("channel_reconcile_unavailable", channel=channel, error=error.detail)
    stored, to_answer = _reconcile_remote(channel=channel, remote=remote)
    replies, given_up = _turns_sweep(tenant=tenant, channel=channel, to_answer=to_answer)
    deliveries = _deliveries_sweep(tenant=tenant, channel=channel)
    if replies + deliveries:
        SWEEP_REQUEUED.labels(kind="turn").inc(replies)
        SWEEP_REQUEUED.labels(kind="delivery").inc(deliveries)
    return ReconcileResult(
        recorded=stored,
        replies_queued=replies,
        deliveries_queued=deliveries,
        channel_error=channel_error,
        given_up=given_up,
    )


def channel_reconcile_all(*, channel: str = Conversation.Channel.PAPERCUPS) -> int:
    """Queue a reconciliation for every tenant connected to the channel (its beat job); returns how many."""
    count = 0
    for tenant_id in channel_tenants_connected(channel=channel).values_list("pk", flat=True):
        reconcile_queue(tenant_id=tenant_id, channel=str(channel))
        count += 1
    return count


def channel_conversation_refresh(*, tenant: Tenant, channel: str, conversation_external_id: str) -> str:
    """Read a conversation from the channel and apply its state (caller in the tenant's schema).

    Raises DeliveryFailed when the channel cannot be read (the task retries a few times; the read before
    every delivery covers what is left).
    """
    observed_at = timezone.now()
    remote = channel_adapter_for(tenant=tenant, channel=channel).conversation_read(
        conversation_external_id=conversation_external_id
    )
    return channel_conversation_sync(channel=channel, state=remote.state, observed_at=observed_at)
