"""Writes for the tenant's conversations, messages and leads (knowledge and configuration: `chat.knowledge`).

Callers run inside the tenant's schema (`tenant_context`). Every channel (chat API, Papercups) goes
through `conversation_reply`, which answers all unanswered visitor messages of a conversation at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.selectors import BotAccess, bot_access_get, llm_models_allowed
from billing.services import usage_ai_reply_record
from chat import engine
from chat.knowledge import (  # noqa: F401 - their public path before the knowledge writes had their module
    BOT_CONFIGURATION_FIELDS,
    bot_configuration_update,
    knowledge_article_create,
    knowledge_article_delete,
    knowledge_article_update,
)
from chat.leads import ContactInfo, extract_contact
from chat.models import Conversation, Lead, Message
from chat.selectors import (
    bot_configuration_get,
    conversation_history,
)
from netia import dispatch
from netia.db import insert_unless_conflict
from netia.errors import ValidationFailed
from netia.fields import max_length
from netia.metrics import CHAT_REPLIES, HANDOFFS, LEADS_CAPTURED
from netia.tenancy import current_schema
from tenants.models import Tenant

logger = structlog.get_logger(__name__)

LEAD_NOTIFY_TASK = "chat.tasks.lead_notify"


class ReplyUnavailable(Exception):
    """The LLM could not answer and the caller asked for no fallback reply: nothing was recorded, retry later."""


@dataclass
class TurnResult:
    """What one visitor turn produced."""

    conversation: Conversation
    visitor_messages: list[Message]
    reply: Message | None = None
    note: Message | None = None
    intent: str = ""
    handoff: bool = False
    handoff_reason: str = ""
    lead: Lead | None = None
    lead_captured: bool = False
    sources: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""


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
            updates.update(status=Conversation.Status.BOT, closed_at=None, bot_since=message.created_at)
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
    now = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(
        status=Conversation.Status.HUMAN,
        handoff_reason=reason[: max_length(Conversation, "handoff_reason")],
        handed_off_at=now,
        updated_at=now,
    )
    conversation.refresh_from_db()
    HANDOFFS.labels(reason=reason.split(":")[0]).inc()
    logger.info("conversation_handed_off", conversation=conversation.pk, reason=reason)
    return conversation


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
def _lead_upsert(*, conversation: Conversation, contact: ContactInfo, intent: str) -> tuple[Lead | None, bool]:
    """Create or update the conversation's lead; returns (lead, whether new contact details were captured).

    A turn with no contact details and no lead intent changes no lead: nothing is read.
    """
    is_lead_intent = intent in engine.LEAD_INTENTS
    if not contact and not is_lead_intent:
        return None, False
    lead = Lead.objects.select_for_update().filter(conversation=conversation).first()
    if lead is None:
        lead = Lead(conversation=conversation, intent=intent if is_lead_intent else "")
    known = ContactInfo(name=lead.name or None, email=lead.email or None, phone=lead.phone or None)
    merged = known.merge(contact)
    captured = merged.as_dict() != known.as_dict()
    if is_lead_intent and not lead.intent:
        lead.intent = intent
    lead.name, lead.email, lead.phone = merged.name or "", merged.email or "", merged.phone or ""
    lead.save()
    if captured:
        LEADS_CAPTURED.inc()
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
    lead, _ = _lead_upsert(conversation=conversation, contact=contact, intent="")
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


# --- Answering ----------------------------------------------------------------------------------------------------
def _summary_note(*, conversation: Conversation, reason: str, question: str) -> str:
    lines = [f"Netia handed this conversation to your team (reason: {reason.replace('_', ' ')})."]
    lead = Lead.objects.filter(conversation=conversation).first()
    if lead and lead.contact_info:
        lines.append("Contact: " + ", ".join(f"{k} {v}" for k, v in lead.contact_info.items()))
    lines.append(f"Last visitor message: {question[:500]}")
    return "\n".join(lines)


def _handoff_note(*, conversation: Conversation, deliver: bool, reason: str, question: str) -> Message:
    """The private note telling the tenant's agents why the bot handed the conversation over."""
    return _bot_message(
        conversation=conversation,
        deliver=deliver,
        role=Message.Role.SYSTEM,
        kind=Message.Kind.NOTE,
        private=True,
        content=_summary_note(conversation=conversation, reason=reason, question=question),
    )


def _bot_message(*, conversation: Conversation, deliver: bool, **fields: Any) -> Message:
    delivery = Message.Delivery.PENDING if deliver else Message.Delivery.NOT_APPLICABLE
    return Message.objects.create(
        conversation=conversation, channel=conversation.channel, delivery_status=delivery, **fields
    )


def conversation_reply(
    *,
    tenant: Tenant,
    conversation_id: int,
    deliver: bool,
    fallback: bool = True,
    access: BotAccess | None = None,
    first_turn: bool = False,
) -> TurnResult | None:
    """Answer every unanswered visitor message of the conversation, once.

    Holds the conversation's row lock while answering (an LLM call included), so a duplicate task or a
    concurrent request waits and then finds nothing left to answer: each visitor turn gets one reply.
    Returns None when there is nothing to answer or a human has the conversation. With `deliver`, bot
    messages are created pending delivery (the channel's outbox). With `fallback=False`, an LLM failure
    raises ReplyUnavailable and records nothing (asynchronous channels retry instead of apologising).
    `access`: the bot-access decision the caller already made for this request (else it is made here).
    `first_turn`: the caller created the conversation for these messages, so it has no history to read.
    """
    # No savepoint when nested (a channel's turn): a failure rolls back the caller's transaction anyway.
    with transaction.atomic(savepoint=False):
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        unanswered = conversation.messages.filter(role=Message.Role.VISITOR, answered_by__isnull=True)
        if conversation.bot_since is not None:
            unanswered = unanswered.filter(created_at__gte=conversation.bot_since)
        pending = list(unanswered.order_by("created_at", "id"))
        if conversation.status != Conversation.Status.BOT or not pending:
            return None
        config = bot_configuration_get()
        question = "\n".join(m.content for m in pending)
        result = TurnResult(conversation=conversation, visitor_messages=pending)

        access = access or bot_access_get(tenant=tenant)
        if not access.allowed:
            result.note = _handoff_note(
                conversation=conversation, deliver=deliver, reason=access.reason, question=question
            )
            conversation_hand_off(conversation=conversation, reason=access.reason)
            _mark_answered(pending, result.note)
            result.handoff, result.handoff_reason, result.source = True, access.reason, engine.Source.PAUSED
            CHAT_REPLIES.labels(channel=conversation.channel, source=engine.Source.PAUSED).inc()
            return result

        intent = engine.classifier(config).classify(question)
        result.intent = intent.intent
        result.lead, result.lead_captured = _lead_upsert(
            conversation=conversation, contact=extract_contact(question), intent=intent.intent
        )
        reason = engine.handoff_reason_for(config=config, text=question, intent=intent)
        if reason:
            answer = engine.Answer(text=config.handoff_message, source=engine.Source.HANDOFF, handoff_reason=reason)
        elif not engine.is_open(config=config, now=timezone.now()):
            answer = engine.Answer(text=config.away_message, source=engine.Source.AWAY)
        else:
            history = (
                []
                if first_turn
                else conversation_history(conversation=conversation, exclude_ids=[m.pk for m in pending])
            )
            # A model the plan no longer allows (a downgrade) falls back to the platform's default.
            model = config.llm_model if config.llm_model in llm_models_allowed(tenant=tenant) else settings.OPENAI_MODEL
            answer = engine.compose_answer(
                config=config,
                business_name=tenant.name,
                question=question,
                intent=intent,
                history=history,
                model=model,
            )
            if answer.source == engine.Source.FALLBACK and not fallback:
                raise ReplyUnavailable("the LLM is unavailable")

        text = answer.text
        if config.cite_sources and conversation.channel != Conversation.Channel.API and answer.sources:
            # The chat API returns `sources` as data; a channel's visitor sees the titles in the text.
            language = engine.reply_language(config=config, text=question)
            text = engine.with_citation(text=text, sources=answer.sources, language=language)
        result.reply = _bot_message(
            conversation=conversation,
            deliver=deliver,
            role=Message.Role.BOT,
            kind=Message.Kind.HANDOFF_NOTICE if answer.handoff_reason else Message.Kind.REPLY,
            content=text,
            intent=intent.intent,
            intent_keywords=list(intent.matched),
            sources=answer.sources,
            llm_model=answer.model,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            latency_ms=answer.latency_ms,
            from_cache=answer.source == engine.Source.CACHE,
            is_fallback=answer.source == engine.Source.FALLBACK,
        )
        _mark_answered(pending, result.reply)
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=result.reply.created_at)
        if answer.handoff_reason:
            if deliver:
                result.note = _handoff_note(
                    conversation=conversation, deliver=deliver, reason=answer.handoff_reason, question=question
                )
            conversation_hand_off(conversation=conversation, reason=answer.handoff_reason)
        if answer.source in engine.METERED_SOURCES:
            usage_ai_reply_record(tenant=tenant)
        result.handoff, result.handoff_reason = bool(answer.handoff_reason), answer.handoff_reason
        result.sources, result.source = answer.sources, answer.source
        result.conversation = conversation
        CHAT_REPLIES.labels(channel=conversation.channel, source=answer.source).inc()
        return result


def message_mark_answered(*, message: Message, answer: Message) -> Message:
    """Record that `answer` (a bot message) answered `message`, unless something already did."""
    Message.objects.filter(pk=message.pk, answered_by__isnull=True).update(answered_by=answer)
    message.refresh_from_db(fields=["answered_by"])
    return message


def _mark_answered(messages: list[Message], answer: Message) -> None:
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(answered_by=answer)
    for message in messages:
        message.answered_by = answer
