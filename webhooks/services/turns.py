"""The bot's turn in a channel conversation: the engine answers the burst, the outbox is queued."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from chat.models import Message
from chat.replies import conversation_reply
from tenants.models import Tenant
from webhooks.services.queueing import delivery_queue


class Turn:
    """What a reply task did."""

    ANSWERED = "answered"
    NOTHING = "nothing"  # nothing unanswered, or a human has the conversation
    SUPERSEDED = "superseded"  # a newer visitor message arrived: its own task answers the whole burst


def channel_conversation_answer(
    *, tenant: Tenant, conversation_id: int, after_message_id: int | None = None, fallback: bool | None = None
) -> str:
    """The bot's turn for a channel conversation (caller in the tenant's schema); queues the delivery.

    `after_message_id`: the visitor message that queued this turn; if a newer one is waiting, its task
    answers (the quiet period restarts with each message). `fallback`: whether an LLM failure may produce
    the polite fallback reply; by default only once the oldest unanswered message has waited
    PAPERCUPS_REPLY_RETRY_SECONDS; before that conversation_reply raises ReplyUnavailable and the task retries.
    """
    unanswered = Message.objects.filter(
        conversation_id=conversation_id, role=Message.Role.VISITOR, answered_by__isnull=True
    )
    if after_message_id is not None and unanswered.filter(pk__gt=after_message_id).exists():
        return Turn.SUPERSEDED
    oldest = unanswered.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is None:
        return Turn.NOTHING
    if fallback is None:
        fallback = timezone.now() - oldest >= timedelta(seconds=settings.PAPERCUPS_REPLY_RETRY_SECONDS)
    # No transaction around it: the engine commits before asking the LLM and records the answer briefly after.
    result = conversation_reply(tenant=tenant, conversation_id=conversation_id, deliver=True, fallback=fallback)
    if result is None:
        return Turn.NOTHING
    delivery_queue(tenant=tenant, conversation_id=conversation_id)
    return Turn.ANSWERED
