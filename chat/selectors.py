"""Reads for the tenant's conversations, leads, knowledge and bot configuration (current schema)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.db.models import Exists, OuterRef, Q, QuerySet

from chat.models import BotConfiguration, Conversation, KnowledgeArticle, Lead, Message
from chat.retrieval import RetrievedPassage, passages_search
from netia.tenancy import current_schema
from netia.versioned_cache import Prefetched, cached
from tenants.models import Tenant

CONVERSATION_TOKEN_SALT = "netia.chat.conversation"  # noqa: S105 - a signing namespace, not a secret


def conversation_token_salt(*, tenant: Tenant) -> str:
    """Conversation tokens are signed per tenant: one tenant's token never opens another's conversation."""
    return f"{CONVERSATION_TOKEN_SALT}:{tenant.pk}"


def conversation_get_by_token(*, tenant: Tenant, token: str) -> Conversation | None:
    """The chat API conversation a server-issued conversation token names (None: forged, expired or gone)."""
    try:
        value = signing.loads(
            token, salt=conversation_token_salt(tenant=tenant), max_age=settings.CHAT_CONVERSATION_TOKEN_MAX_AGE
        )
        public_id = uuid.UUID(str(value))
    except (signing.BadSignature, ValueError):
        return None
    return Conversation.objects.filter(channel=Conversation.Channel.API, public_id=public_id).first()


def bot_configuration_cache(*, schema: str = "") -> str:
    """The version-keyed cache namespace of the tenant's configuration (bumped by every write to it): the
    tenant of `schema`, else of the connection's current schema."""
    return f"botconfig:{schema or current_schema()}"


def bot_configuration_cache_key(*, schema: str = "") -> tuple[str, str]:
    """Where `bot_configuration_get` caches the tenant's configuration (for `versioned_cache.prefetch`): the
    tenant of `schema`, else of the connection's current schema."""
    return bot_configuration_cache(schema=schema), "config"


def bot_configuration_get(*, prefetched: Prefetched | None = None) -> BotConfiguration:
    """The tenant's bot configuration (created with defaults on first use), from the version-keyed cache."""

    def load() -> BotConfiguration:
        return BotConfiguration.objects.get_or_create(id=1)[0]

    config = cached(*bot_configuration_cache_key(), load, prefetched=prefetched)
    assert config is not None  # noqa: S101 - load() never returns None
    return config


def conversation_history(*, conversation: Conversation, exclude_ids: list[int] | None = None) -> list[Message]:
    """The conversation's most recent public messages, oldest first (for the prompt)."""
    queryset = conversation.messages.filter(private=False).exclude(pk__in=exclude_ids or [])
    recent = list(queryset.order_by("-created_at", "-id")[: settings.CHAT_HISTORY_MESSAGES])
    return recent[::-1]


def conversation_list(*, status: str | None = None) -> QuerySet[Conversation]:
    queryset = Conversation.objects.all()
    return queryset.filter(status=status) if status else queryset


def lead_list(*, status: str | None = None, email_given_up: bool | None = None) -> QuerySet[Lead]:
    """The leads with their conversation; `email_given_up`: only those whose email to the owner was (not)
    given up."""
    queryset = Lead.objects.select_related("conversation")
    if email_given_up is not None:
        queryset = queryset.filter(notify_gave_up_at__isnull=not email_given_up)
    return queryset.filter(status=status) if status else queryset


def knowledge_article_list() -> QuerySet[KnowledgeArticle]:
    return KnowledgeArticle.objects.all()


@dataclass(frozen=True)
class ConversationFilters:
    """The portal's conversation search: words in the visitor's details or messages, and exact filters.

    Dates are whole days in `tz` (the bot's time zone), both ends included.
    """

    q: str = ""
    status: str = ""
    channel: str = ""
    intent: str = ""
    date_from: date | None = None
    date_to: date | None = None
    tz: str = "UTC"


def _day_range(queryset: QuerySet, field: str, start: date | None, end: date | None, tz: str) -> QuerySet:
    zone = ZoneInfo(tz)
    if start:
        queryset = queryset.filter(**{f"{field}__gte": datetime.combine(start, time.min, tzinfo=zone)})
    if end:
        queryset = queryset.filter(**{f"{field}__lt": datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone)})
    return queryset


def conversation_search(*, filters: ConversationFilters) -> QuerySet[Conversation]:
    """Conversations matching every filter given, most recent activity first."""
    queryset = Conversation.objects.all()
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.channel:
        queryset = queryset.filter(channel=filters.channel)
    if filters.intent:
        queryset = queryset.filter(Exists(Message.objects.filter(conversation=OuterRef("pk"), intent=filters.intent)))
    if filters.q:
        in_messages = Exists(Message.objects.filter(conversation=OuterRef("pk"), content__icontains=filters.q))
        queryset = queryset.filter(
            Q(visitor_name__icontains=filters.q) | Q(visitor_email__icontains=filters.q) | Q(in_messages)
        )
    return _day_range(queryset, "created_at", filters.date_from, filters.date_to, filters.tz)


def conversation_intents() -> list[str]:
    """The intents the bot has recorded in this tenant's conversations (for the filter's choices)."""
    return sorted(set(Message.objects.exclude(intent="").values_list("intent", flat=True).distinct()))


def conversation_get(*, public_id: UUID | str) -> Conversation | None:
    """One conversation by its public id (a UUID), or None."""
    return Conversation.objects.filter(public_id=public_id).select_related("lead").first()


def conversation_transcript(*, conversation: Conversation) -> QuerySet[Message]:
    """Every message of the conversation, private notes included, oldest first."""
    return conversation.messages.select_related("answered_by").order_by("created_at", "id")


def lead_search(
    *,
    q: str = "",
    status: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    tz: str = "UTC",
) -> QuerySet[Lead]:
    """Leads matching every filter given (words in name, email, phone or notes), newest first."""
    queryset = lead_list(status=status or None)
    if q:
        queryset = queryset.filter(
            Q(name__icontains=q) | Q(email__icontains=q) | Q(phone__icontains=q) | Q(notes__icontains=q)
        )
    return _day_range(queryset, "created_at", date_from, date_to, tz)


def knowledge_passages_test(*, question: str) -> list[RetrievedPassage]:
    """The passages retrieval finds for `question`, best first: exactly what the bot would be given."""
    config = bot_configuration_get()
    return passages_search(query=question, language=config.language, limit=settings.CHAT_RETRIEVAL_PASSAGES)


def conversation_contact_values(*, conversation: Conversation) -> list[str]:
    """The visitor's contact details known for a conversation (its own fields and its lead's), for redaction."""
    values = [conversation.visitor_name, conversation.visitor_email]
    lead = Lead.objects.filter(conversation=conversation).first()
    if lead is not None:
        values += [lead.name, lead.email, lead.phone]
    return [value for value in values if value]
