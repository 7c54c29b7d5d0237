"""Reads for the tenant's conversations, leads, knowledge and bot configuration (current schema)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from chat.models import BotConfiguration, Conversation, KnowledgeArticle, Lead, Message


def bot_configuration_get() -> BotConfiguration:
    """The tenant's bot configuration, created with defaults on first use."""
    config, _ = BotConfiguration.objects.get_or_create(id=1)
    return config


def conversation_history(*, conversation: Conversation, exclude_ids: list[int] | None = None) -> list[Message]:
    """The conversation's most recent public messages, oldest first (for the prompt)."""
    queryset = conversation.messages.filter(private=False).exclude(pk__in=exclude_ids or [])
    recent = list(queryset.order_by("-created_at", "-id")[: settings.CHAT_HISTORY_MESSAGES])
    return recent[::-1]


def conversation_list(*, status: str | None = None) -> QuerySet[Conversation]:
    queryset = Conversation.objects.all()
    return queryset.filter(status=status) if status else queryset


def lead_list(*, status: str | None = None) -> QuerySet[Lead]:
    queryset = Lead.objects.select_related("conversation")
    return queryset.filter(status=status) if status else queryset


def knowledge_article_list() -> QuerySet[KnowledgeArticle]:
    return KnowledgeArticle.objects.all()
