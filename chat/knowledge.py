"""Writes for the tenant's knowledge base and bot configuration (callers in the tenant's schema).

Each change re-indexes what it touched and bumps a version, so cached answers and classifiers go stale.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import F

from billing.selectors import llm_models_allowed, plan_quota_check
from chat import embeddings
from chat.models import BotConfiguration, KnowledgeArticle
from chat.retrieval import article_index
from chat.selectors import bot_configuration_get
from netia import dispatch
from netia.errors import ValidationFailed
from netia.fields import max_length
from netia.tenancy import current_schema
from tenants.models import Tenant

_TITLE_MAX = max_length(KnowledgeArticle, "title")


def _queue_embedding(article_id: int) -> None:
    """After commit, embed the article's new passages (when embeddings are on): no API call in the transaction."""
    if embeddings.model():
        dispatch.enqueue_on_commit("chat.tasks.passages_embed", schema_name=current_schema(), article_id=article_id)


def _bump_knowledge_version() -> None:
    bot_configuration_get()
    BotConfiguration.objects.filter(pk=1).update(knowledge_version=F("knowledge_version") + 1)


@transaction.atomic
def knowledge_article_create(*, tenant: Tenant, title: str, content: str, source_url: str = "") -> KnowledgeArticle:
    """Add an article to the tenant's knowledge base (the current schema) and index it, within the plan's quota."""
    title, content = title.strip(), content.strip()
    if not title or not content:
        raise ValidationFailed("An article needs a title and content.")
    plan_quota_check(tenant=tenant, resource="knowledge_articles", used=KnowledgeArticle.objects.count())
    article = KnowledgeArticle.objects.create(title=title[:_TITLE_MAX], content=content, source_url=source_url)
    article_index(article=article, language=bot_configuration_get().language)
    _queue_embedding(article.pk)
    _bump_knowledge_version()
    return article


@transaction.atomic
def knowledge_article_update(
    *, article: KnowledgeArticle, title: str | None = None, content: str | None = None, source_url: str | None = None
) -> KnowledgeArticle:
    """Edit an article, re-index it and invalidate cached answers."""
    if title is not None:
        article.title = title.strip()[:_TITLE_MAX]
    if content is not None:
        article.content = content.strip()
    if source_url is not None:
        article.source_url = source_url
    if not article.title or not article.content:
        raise ValidationFailed("An article needs a title and content.")
    article.save()
    article_index(article=article, language=bot_configuration_get().language)
    _queue_embedding(article.pk)
    _bump_knowledge_version()
    return article


@transaction.atomic
def knowledge_article_delete(*, article: KnowledgeArticle) -> None:
    """Remove an article and its passages; invalidates cached answers."""
    article.delete()
    _bump_knowledge_version()


BOT_CONFIGURATION_FIELDS = frozenset(
    f.name
    for f in BotConfiguration._meta.get_fields()
    if f.name not in {"id", "version", "knowledge_version", "updated_at"}
)


@transaction.atomic
def bot_configuration_update(*, tenant: Tenant, **changes: Any) -> BotConfiguration:
    """Change the bot's configuration; bumps its version (invalidating cached answers and classifiers).

    The LLM model must be one the tenant's plan allows (billing.selectors.llm_models_allowed).
    """
    unknown = set(changes) - BOT_CONFIGURATION_FIELDS
    if unknown:
        raise ValidationFailed("Unknown configuration fields.", extra={"unknown": sorted(unknown)})
    if "llm_model" in changes and changes["llm_model"] not in (allowed := llm_models_allowed(tenant=tenant)):
        raise ValidationFailed(
            "Invalid bot configuration.",
            extra={
                "fields": {"llm_model": [f"Not on this plan: choose one of {', '.join(allowed)}."]},
                "allowed": allowed,
            },
        )
    config = BotConfiguration.objects.select_for_update().get_or_create(id=1)[0]  # fresh and locked, not cached
    language_changed = "language" in changes and changes["language"] != config.language
    for name, value in changes.items():
        setattr(config, name, value)
    try:
        config.full_clean(exclude=["version", "knowledge_version"])
    except DjangoValidationError as exc:
        raise ValidationFailed("Invalid bot configuration.", extra={"fields": exc.message_dict}) from None
    config.version = F("version") + 1
    config.save()
    config.refresh_from_db()
    if language_changed:
        for article in KnowledgeArticle.objects.all():
            article_index(article=article, language=config.language)
            _queue_embedding(article.pk)
        _bump_knowledge_version()
        config.refresh_from_db()
    return config
