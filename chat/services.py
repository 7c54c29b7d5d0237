"""Writes for the tenant's conversations, messages and leads (knowledge and configuration: `chat.knowledge`).

Callers run inside the tenant's schema (`tenant_context`). The bot's turn (`conversation_reply`, which every
channel goes through) is in `chat.replies`.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import engine
from chat.knowledge import (  # noqa: F401 - their public path before the knowledge writes had their module
    BOT_CONFIGURATION_FIELDS,
    bot_configuration_update,
    knowledge_article_create,
    knowledge_article_delete,
    knowledge_article_update,
)
from chat.leads import ContactInfo
from chat.models import Conversation, Lead, Message
from netia import dispatch
from netia.db import insert_unless_conflict
from netia.errors import ValidationFailed
from netia.fields import max_length
from netia.metrics import HANDOFFS, LEADS_CAPTURED
from netia.tenancy import current_schema

logger = structlog.get_logger(__name__)

LEAD_NOTIFY_TASK = "chat.tasks.lead_notify"


# --- Conversations and messages ------------------------------------------------------------------------------
def conversation_get_or_create(
    *,
    channel: str,
    external_id: str = "",
    session_id: str = "",
    external_customer_id: str = "",
    visitor_name: str = "",
    visitor_email: str = "",
) -> tuple[Conversation, bool]:
    """The conversation identified by the channel's id (or the visitor session), created if new."""
    if not (external_id or session_id):
        raise ValueError("a conversation needs an external id or a session id")
    lookup = (
        {"channel": channel, "external_id": external_id}
        if external_id
        else {"channel": channel, "session_id": session_id}
    )
    defaults = {
        "external_customer_id": external_customer_id,
        "visitor_name": visitor_name[: max_length(Conversation, "visitor_name")],
        "visitor_email": visitor_email,
    }
    conversation = Conversation.objects.filter(**lookup).first()
    if conversation is None:
        conversation = Conversation(**lookup, **defaults)
        if insert_unless_conflict(conversation):  # no savepoint: one statement, even when it loses a race
            return conversation, True
        conversation = Conversation.objects.get(**lookup)  # a concurrent request created it first
    changed = [k for k, v in defaults.items() if v and not getattr(conversation, k)]
    for name in changed:
        setattr(conversation, name, defaults[name])
    if changed:
        conversation.save(update_fields=[*changed, "updated_at"])
    return conversation, False


def _message_get_or_create(*, conversation: Conversation, external_id: str, **fields: Any) -> tuple[Message, bool]:
    if not external_id:
        return Message.objects.create(conversation=conversation, channel=conversation.channel, **fields), True
    try:
        with transaction.atomic():
            return Message.objects.get_or_create(
                channel=conversation.channel,
                external_id=external_id,
                defaults={"conversation": conversation, **fields},
            )
    except IntegrityError:
        return Message.objects.get(channel=conversation.channel, external_id=external_id), False


def message_record_visitor(
    *, conversation: Conversation, content: str, external_id: str = "", touch: bool = True
) -> tuple[Message, bool]:
    """Store a visitor's message once (idempotent on the channel's message id); reopens a closed chat.

    `touch=False` leaves the conversation row alone: for a message answered in the same request (the reply
    sets the conversation's last message time; the caller must be sure the chat is not closed).
    """
    if not touch:  # one INSERT: no transaction of its own (BEGIN/COMMIT are round trips too)
        return _message_get_or_create(
            conversation=conversation, external_id=external_id, role=Message.Role.VISITOR, content=content
        )
    with transaction.atomic(savepoint=False):
        return _visitor_message_touch(conversation=conversation, content=content, external_id=external_id)


def _visitor_message_touch(*, conversation: Conversation, content: str, external_id: str) -> tuple[Message, bool]:
    message, created = _message_get_or_create(
        conversation=conversation, external_id=external_id, role=Message.Role.VISITOR, content=content
    )
    if created:
        updates: dict[str, Any] = {"last_message_at": message.created_at, "updated_at": timezone.now()}
        if conversation.status == Conversation.Status.CLOSED:
            # The visitor wrote, so the channel has the conversation open now: an older reading of the
            # channel's state (a late `conversation:updated`) must not close it again.
            updates.update(
                status=Conversation.Status.BOT,
                closed_at=None,
                bot_since=message.created_at,
                channel_state_at=timezone.now(),
            )
        Conversation.objects.filter(pk=conversation.pk).update(**updates)
        for name, value in updates.items():
            setattr(conversation, name, value)
    return message, created


@transaction.atomic
def message_record_agent(
    *, conversation: Conversation, content: str, external_id: str = "", private: bool = False
) -> tuple[Message, bool]:
    """Store a human agent's message; a public one means the agent took over, so the bot stands down."""
    message, created = _message_get_or_create(
        conversation=conversation,
        external_id=external_id,
        role=Message.Role.AGENT,
        kind=Message.Kind.NOTE if private else Message.Kind.REPLY,
        content=content,
        private=private,
    )
    if created and not private and conversation.status == Conversation.Status.BOT:
        conversation_hand_off(conversation=conversation, reason="agent_replied")
    return message, created


def conversation_hand_off(*, conversation: Conversation, reason: str) -> Conversation:
    """Move the conversation to human status: from now on the bot stays silent there."""
    Conversation.objects.filter(pk=conversation.pk).update(**conversation_handoff_fields(reason=reason))
    conversation.refresh_from_db()
    handoff_counted(conversation=conversation, reason=reason)
    return conversation


def conversation_handoff_fields(*, reason: str) -> dict[str, Any]:
    """The columns a handoff sets (also on a conversation created handed off, `chat.replies.first_turn_record`)."""
    now = timezone.now()
    return {
        "status": Conversation.Status.HUMAN,
        "handoff_reason": reason[: max_length(Conversation, "handoff_reason")],
        "handed_off_at": now,
        "updated_at": now,
    }


def handoff_counted(*, conversation: Conversation, reason: str) -> None:
    """Count and log a handoff that was just written."""
    HANDOFFS.labels(reason=reason.split(":")[0]).inc()
    logger.info("conversation_handed_off", conversation=conversation.pk, reason=reason)


def conversation_set_status(*, conversation: Conversation, status: str) -> Conversation:
    """Set the status (e.g. from the channel); closing records when, returning to the bot records since when."""
    now = timezone.now()
    if status == Conversation.Status.BOT and conversation.status != Conversation.Status.BOT:
        conversation.bot_since = now
    conversation.status = status
    conversation.closed_at = now if status == Conversation.Status.CLOSED else None
    conversation.save(update_fields=["status", "closed_at", "bot_since", "updated_at"])
    return conversation


# --- Leads -----------------------------------------------------------------------------------------------------
def lead_upsert_writes(*, contact: ContactInfo, intent: str) -> bool:
    """Whether `lead_upsert` reads and writes a lead for this turn (else it changes nothing)."""
    return bool(contact) or intent in engine.LEAD_INTENTS


def lead_upsert(*, conversation: Conversation, contact: ContactInfo, intent: str) -> tuple[Lead | None, bool]:
    """Create or update the conversation's lead; returns (lead, whether new contact details were captured).

    A turn with no contact details and no lead intent changes no lead: nothing is read. The owner is emailed
    about a lead once (`chat.notifications`): the first time it has contact details.
    """
    if not lead_upsert_writes(contact=contact, intent=intent):
        return None, False
    is_lead_intent = intent in engine.LEAD_INTENTS
    lead = Lead.objects.select_for_update().filter(conversation=conversation).first()
    if lead is None:
        lead = Lead(conversation=conversation, intent=intent if is_lead_intent else "")
    known = ContactInfo(name=lead.name or None, email=lead.email or None, phone=lead.phone or None)
    merged = known.merge(contact)
    captured = merged.as_dict() != known.as_dict()
    if is_lead_intent and not lead.intent:
        lead.intent = intent
    lead.name, lead.email, lead.phone = merged.name or "", merged.email or "", merged.phone or ""
    if captured and lead.notify_due_at is None:
        lead.notify_due_at = timezone.now()
    lead.save()
    if captured:
        LEADS_CAPTURED.inc()
        if lead.notified_at is None:
            dispatch.enqueue_on_commit(LEAD_NOTIFY_TASK, schema_name=current_schema(), lead_id=lead.pk)
    return lead, captured


@transaction.atomic
def conversation_contact_record(*, conversation: Conversation, contact: ContactInfo) -> Lead | None:
    """Contact details the channel reports for the visitor (not found in their text): the conversation's
    visitor fields and its lead take them; the owner is notified as for details found in a message."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    changed: list[str] = []
    if contact.name and conversation.visitor_name != contact.name:
        conversation.visitor_name, changed = contact.name[:200], [*changed, "visitor_name"]
    if contact.email and conversation.visitor_email != contact.email:
        conversation.visitor_email, changed = contact.email, [*changed, "visitor_email"]
    if changed:
        conversation.save(update_fields=[*changed, "updated_at"])
    lead, _ = lead_upsert(conversation=conversation, contact=contact, intent="")
    return lead


def lead_update(*, lead: Lead, status: str | None = None, notes: str | None = None) -> Lead:
    """Staff or owner updates to a lead's pipeline status and notes."""
    if status is not None:
        if status not in Lead.Status.values:
            raise ValidationFailed("Unknown lead status.", extra={"allowed": list(Lead.Status.values)})
        lead.status = status
    if notes is not None:
        lead.notes = notes
    lead.save(update_fields=["status", "notes", "updated_at"])
    return lead


def message_mark_answered(*, message: Message, answer: Message) -> Message:
    """Record that `answer` (a bot message) answered `message`, unless something already did."""
    Message.objects.filter(pk=message.pk, answered_by__isnull=True).update(answered_by=answer)
    message.refresh_from_db(fields=["answered_by"])
    return message
