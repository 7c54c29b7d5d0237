"""The bot's turn: answer every unanswered visitor message of a conversation once, with no network call while
a transaction or a row lock is open.

A turn is three steps (the outbox pattern): under the conversation's row lock, read what is unanswered and
decide what needs no model (a handoff, the away message, a paused bot), then commit; ask the LLM (or the
cache and the offline responder) with no transaction open; then, in a short transaction under the lock
again, record the answer only if the same messages are still unanswered and the bot still has the
conversation. If something changed meanwhile (a concurrent request answered them, a human took over), the
answer is dropped and the turn starts over: each visitor message is answered once.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from billing.selectors import BillingState, BotAccess, bot_access_get, llm_models_allowed
from billing.services import usage_ai_reply_record, usage_count, usage_counted
from chat import engine
from chat.intents import IntentResult
from chat.leads import extract_contact
from chat.models import BotConfiguration, Conversation, Lead, Message
from chat.selectors import bot_configuration_get, conversation_history
from chat.services import (
    conversation_hand_off,
    conversation_handoff_fields,
    handoff_counted,
    lead_upsert,
    lead_upsert_writes,
)
from netia.db import insert_unless_conflict_with_children, unsaved
from netia.metrics import CHAT_REPLIES
from netia.versioned_cache import Prefetched
from tenants.models import Tenant

logger = structlog.get_logger(__name__)

# A turn whose recorded state changed while the model was answering starts over at most this many times.
_ATTEMPTS = 3


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


@dataclass
class _Plan:
    """A turn that needs the model: what was read under the lock, to be answered outside it."""

    result: TurnResult
    config: BotConfiguration
    question: str
    intent: IntentResult
    bot_since: datetime | None
    billing: BillingState | None = None
    used: int | None = None  # the period's AI replies the bot-access decision read


def _summary_note(*, conversation: Conversation, reason: str, question: str) -> str:
    lines = [f"Netia handed this conversation to your team (reason: {reason.replace('_', ' ')})."]
    lead = Lead.objects.filter(conversation=conversation).first()
    if lead and lead.contact_info:
        lines.append("Contact: " + ", ".join(f"{k} {v}" for k, v in lead.contact_info.items()))
    lines.append(f"Last visitor message: {question[:500]}")
    return "\n".join(lines)


def _bot_message(*, conversation: Conversation, deliver: bool, **fields: Any) -> Message:
    delivery = Message.Delivery.PENDING if deliver else Message.Delivery.NOT_APPLICABLE
    return Message.objects.create(
        conversation=conversation, channel=conversation.channel, delivery_status=delivery, **fields
    )


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


def _mark_answered(messages: list[Message], answer: Message, *, only_unanswered: bool = False) -> bool:
    """Mark `messages` answered by `answer`; with `only_unanswered`, all or none: False if one was answered."""
    marked = Message.objects.filter(pk__in=[m.pk for m in messages])
    if only_unanswered:
        marked = marked.filter(answered_by__isnull=True)
    if marked.update(answered_by=answer) != len(messages) and only_unanswered:
        return False
    for message in messages:
        message.answered_by = answer
    return True


def _hand_off(*, conversation: Conversation, deliver: bool, reason: str) -> None:
    """Give the conversation to the humans; with `deliver`, the channel is told too (the outbox's handoff call)."""
    conversation_hand_off(conversation=conversation, reason=reason)
    if deliver:
        Conversation.objects.filter(pk=conversation.pk).update(handoff_sync_pending=True)
        conversation.handoff_sync_pending = True


def visitor_messages_unanswered() -> QuerySet[Message]:
    """The visitor messages the bot still owes an answer: unanswered and written since the bot last got the chat
    (what a visitor wrote while a human had it was the humans' to answer)."""
    return Message.objects.filter(role=Message.Role.VISITOR, answered_by__isnull=True).filter(
        Q(conversation__bot_since__isnull=True) | Q(created_at__gte=F("conversation__bot_since"))
    )


def _unanswered(conversation: Conversation) -> list[Message]:
    return list(visitor_messages_unanswered().filter(conversation=conversation).order_by("created_at", "id"))


def _rule_answer(*, config: BotConfiguration, question: str, intent: IntentResult) -> engine.Answer | None:
    """The handoff message when `engine.handoff_reason_for` gives a reason, else the away message out of hours;
    None when the knowledge base and the model (or the offline responder) should answer."""
    reason = engine.handoff_reason_for(config=config, text=question, intent=intent)
    if reason:
        return engine.Answer(text=config.handoff_message, source=engine.Source.HANDOFF, handoff_reason=reason)
    if not engine.is_open(config=config, now=timezone.now()):
        return engine.Answer(text=config.away_message, source=engine.Source.AWAY)
    return None


def _turn_open(
    *, tenant: Tenant, conversation_id: int, deliver: bool, access: BotAccess | None
) -> TurnResult | _Plan | None:
    """Step 1, under the row lock: None (nothing to answer), a finished TurnResult, or a _Plan for the model."""
    # No savepoint when nested (a test's transaction): nothing here is rolled back on its own.
    with transaction.atomic(savepoint=False):
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        pending = _unanswered(conversation)
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
            _hand_off(conversation=conversation, deliver=deliver, reason=access.reason)
            _mark_answered(pending, result.note)
            result.handoff, result.handoff_reason, result.source = True, access.reason, engine.Source.PAUSED
            CHAT_REPLIES.labels(channel=conversation.channel, source=engine.Source.PAUSED).inc()
            return result

        intent = engine.classifier(config).classify(question)
        result.intent = intent.intent
        result.lead, result.lead_captured = lead_upsert(
            conversation=conversation, contact=extract_contact(question), intent=intent.intent
        )
        answer = _rule_answer(config=config, question=question, intent=intent)
        if answer is None:
            return _Plan(
                result=result,
                config=config,
                question=question,
                intent=intent,
                bot_since=conversation.bot_since,
                billing=access.state,
                used=access.used,
            )
        _record(
            tenant=tenant,
            config=config,
            result=result,
            answer=answer,
            intent=intent,
            question=question,
            deliver=deliver,
        )
        return result


def _turn_close(*, tenant: Tenant, plan: _Plan, answer: engine.Answer, deliver: bool) -> TurnResult | None:
    """Step 3, under the row lock again: record the answer if nothing changed meanwhile, else None.

    The conversation's row is locked by the UPDATE that also checks the bot still has it (PostgreSQL re-reads
    a row it waited for); its visitor messages are then marked answered only if none was answered meanwhile
    (a statement after the lock sees every earlier turn's commit), else the answer is withdrawn.
    """
    result = plan.result
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        locked = Conversation.objects.filter(
            pk=result.conversation.pk, status=Conversation.Status.BOT, bot_since=plan.bot_since
        ).update(last_message_at=now)
        if not locked:  # a human took it, it was closed or reopened: nothing was written
            logger.info("turn_changed_while_answering", conversation=result.conversation.pk)
            return None
        result.conversation.last_message_at = now
        recorded = _record(
            tenant=tenant,
            config=plan.config,
            result=result,
            answer=answer,
            intent=plan.intent,
            question=plan.question,
            deliver=deliver,
            answered_at=now,
            billing=plan.billing,
            used=plan.used,
        )
    if not recorded:
        logger.info("turn_answered_meanwhile", conversation=result.conversation.pk)
        result.reply = None
        return None
    return result


def _record(
    *,
    tenant: Tenant,
    config: BotConfiguration,
    result: TurnResult,
    answer: engine.Answer,
    intent: IntentResult,
    question: str,
    deliver: bool,
    answered_at: datetime | None = None,
    billing: BillingState | None = None,
    used: int | None = None,
) -> bool:
    """Store the bot's answer, mark the turn answered, meter it (caller holds the conversation's row lock).

    `answered_at`: step 3's time, already written as the conversation's last message time; the turn's
    messages must all be still unanswered, else the reply is withdrawn and nothing else is written (False).
    `billing`, `used`: the billing state and usage the turn's bot-access decision read (metering reuses them).
    """
    conversation = result.conversation
    result.reply = _reply_message(
        config=config, conversation=conversation, deliver=deliver, answer=answer, intent=intent, question=question
    )
    result.reply.save(force_insert=True)
    if answered_at is None:
        _mark_answered(result.visitor_messages, result.reply)
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=result.reply.created_at)
    elif not _mark_answered(result.visitor_messages, result.reply, only_unanswered=True):
        # Another turn answered some of them meanwhile (it held the lock first): withdraw this answer.
        Message.objects.filter(answered_by=result.reply).update(answered_by=None)
        Message.objects.filter(pk=result.reply.pk).delete()
        return False
    if answer.handoff_reason:
        if deliver:
            result.note = _handoff_note(
                conversation=conversation, deliver=deliver, reason=answer.handoff_reason, question=question
            )
        _hand_off(conversation=conversation, deliver=deliver, reason=answer.handoff_reason)
    if answer.source in engine.METERED_SOURCES:
        usage_ai_reply_record(tenant=tenant, state=billing, used=used)
    _answered(result=result, answer=answer)
    return True


def _answered(*, result: TurnResult, answer: engine.Answer) -> None:
    result.handoff, result.handoff_reason = bool(answer.handoff_reason), answer.handoff_reason
    result.sources, result.source = answer.sources, answer.source
    CHAT_REPLIES.labels(channel=result.conversation.channel, source=answer.source).inc()


def _reply_message(
    *,
    config: BotConfiguration,
    conversation: Conversation,
    deliver: bool,
    answer: engine.Answer,
    intent: IntentResult,
    question: str,
) -> Message:
    """The bot's message carrying `answer` (unsaved)."""
    text = answer.text
    if config.cite_sources and conversation.channel != Conversation.Channel.API and answer.sources:
        # The chat API returns `sources` as data; a channel's visitor sees the titles in the text.
        language = engine.reply_language(config=config, text=question)
        text = engine.with_citation(text=text, sources=answer.sources, language=language)
    return unsaved(
        Message,
        conversation=conversation,
        channel=conversation.channel,
        delivery_status=Message.Delivery.PENDING if deliver else Message.Delivery.NOT_APPLICABLE,
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


@dataclass
class LocalTurn:
    """A first turn decided with no network call (see `first_turn_local`), for `first_turn_record` to store."""

    question: str
    intent: IntentResult
    answer: engine.Answer


def first_turn_local(
    *, config: BotConfiguration, question: str, prefetched: Prefetched | None = None
) -> LocalTurn | None:
    """The bot's answer to a new conversation's first message when no network call makes it (a handoff, the away
    message, the response cache, the offline responder), decided as `_turn_open` and `compose_answer` decide;
    None when only the LLM can answer (the caller then takes `conversation_reply`'s two-phase path).
    `prefetched`: the answer cache's entry, if the caller read it (`engine.answer_cache_key_guess`)."""
    intent = engine.classifier(config).classify(question)
    answer = _rule_answer(config=config, question=question, intent=intent) or engine.local_answer(
        config=config, question=question, intent=intent, prefetched=prefetched
    )
    return None if answer is None else LocalTurn(question=question, intent=intent, answer=answer)


def first_turn_record(
    *, tenant: Tenant, config: BotConfiguration, conversation: Conversation, turn: LocalTurn, access: BotAccess
) -> tuple[Message, TurnResult] | None:
    """Store the new (unsaved) `conversation`, its visitor's first message, the bot's local answer and (metered)
    the usage in one statement (in one transaction with the lead when it is written too): the visitor's
    message and its answer; None, writing nothing, when the conversation's session_id is taken.

    Nobody else can see the conversation before this commits, so nothing is locked or read back: its only
    unanswered message is the one written here (what `_turn_open` and `_turn_close` make sure of for a
    conversation others can see). For the chat API (no channel delivery); `access` allowed the bot to answer.
    """
    answer, intent, question = turn.answer, turn.intent, turn.question
    conversation.last_message_at = timezone.now()
    if answer.handoff_reason:
        for name, value in conversation_handoff_fields(reason=answer.handoff_reason).items():
            setattr(conversation, name, value)
    contact = extract_contact(question)
    metered = answer.source in engine.METERED_SOURCES
    reply = _reply_message(
        config=config, conversation=conversation, deliver=False, answer=answer, intent=intent, question=question
    )
    # The visitor's message names its answer (the foreign key is checked at the statement's end).
    visitor = unsaved(
        Message,
        conversation=conversation,
        channel=conversation.channel,
        role=Message.Role.VISITOR,
        content=question,
        answered_by=reply,
    )
    # One statement writes the conversation, both messages and (metered) the usage with its email when a
    # threshold is crossed, all only when the session is not taken: a transaction only when the lead is
    # written too.
    usage = usage_count(tenant=tenant, state=access.state, source=" FROM ids", used=access.used) if metered else None
    needs_transaction = lead_upsert_writes(contact=contact, intent=intent.intent)
    with transaction.atomic(savepoint=False) if needs_transaction else nullcontext():
        counted = insert_unless_conflict_with_children(
            conversation, [visitor, reply], then=usage.statements if usage else ()
        )
        if counted is None:
            return None
        result = TurnResult(conversation=conversation, visitor_messages=[visitor], reply=reply, intent=intent.intent)
        result.lead, result.lead_captured = lead_upsert(
            conversation=conversation, contact=contact, intent=intent.intent
        )
        if usage:
            usage_counted(usage, results=counted)
    if answer.handoff_reason:
        handoff_counted(conversation=conversation, reason=answer.handoff_reason)
    _answered(result=result, answer=answer)
    return visitor, result


def conversation_reply(
    *,
    tenant: Tenant,
    conversation_id: int,
    deliver: bool,
    fallback: bool = True,
    access: BotAccess | None = None,
    first_turn: bool = False,
) -> TurnResult | None:
    """Answer every unanswered visitor message of the conversation, once (caller in the tenant's schema).

    No transaction or lock is held while the model answers (see the module's docstring). Returns None when
    there is nothing to answer or a human has the conversation. With `deliver`, bot messages are created
    pending delivery (the channel's outbox) and a handoff is marked for the channel. With `fallback=False`,
    an LLM failure raises ReplyUnavailable and records nothing (asynchronous channels retry instead).
    `access`: the bot-access decision the caller already made for this request (else it is made here).
    `first_turn`: the caller created the conversation for these messages, so it has no history to read.
    """
    for attempt in range(_ATTEMPTS):
        opened = _turn_open(tenant=tenant, conversation_id=conversation_id, deliver=deliver, access=access)
        if not isinstance(opened, _Plan):
            return opened
        conversation = opened.result.conversation
        history = (
            []
            if first_turn and attempt == 0
            else conversation_history(
                conversation=conversation, exclude_ids=[m.pk for m in opened.result.visitor_messages]
            )
        )
        # A model the plan no longer allows (a downgrade) falls back to the platform's default.
        config = opened.config
        allowed = llm_models_allowed(tenant=tenant, state=opened.billing)
        model = config.llm_model if config.llm_model in allowed else settings.OPENAI_MODEL
        answer = engine.compose_answer(
            config=config,
            business_name=tenant.name,
            question=opened.question,
            intent=opened.intent,
            history=history,
            model=model,
        )
        if answer.source == engine.Source.FALLBACK and not fallback:
            raise ReplyUnavailable("the LLM is unavailable")
        closed = _turn_close(tenant=tenant, plan=opened, answer=answer, deliver=deliver)
        if closed is not None:
            return closed
    return None


def conversation_give_up(*, conversation_id: int, reason: str, deliver: bool) -> TurnResult | None:
    """Stop trying to answer: hand the unanswered turn to the humans with a private note (None if nothing left).

    For a turn no task managed to answer within its window; the caller records it for staff.
    """
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        pending = _unanswered(conversation)
        if conversation.status != Conversation.Status.BOT or not pending:
            return None
        question = "\n".join(m.content for m in pending)
        result = TurnResult(conversation=conversation, visitor_messages=pending, handoff=True, handoff_reason=reason)
        result.note = _handoff_note(conversation=conversation, deliver=deliver, reason=reason, question=question)
        _hand_off(conversation=conversation, deliver=deliver, reason=reason)
        _mark_answered(pending, result.note)
        return result
