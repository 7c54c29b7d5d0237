"""Writes for the tenant's conversations and knowledge. Callers run inside the tenant's schema."""

from __future__ import annotations

from django.db import transaction

from chat.models import KnowledgeArticle


@transaction.atomic
def knowledge_article_create(*, title: str, content: str, source_url: str = "") -> KnowledgeArticle:
    """Add an article to the current tenant's knowledge base."""
    return KnowledgeArticle.objects.create(title=title.strip(), content=content.strip(), source_url=source_url)
