"""Tenant-schema data: knowledge base (conversations, messages, leads and bot configuration follow)."""

from __future__ import annotations

from django.db import models


class KnowledgeArticle(models.Model):
    """A piece of the tenant's knowledge base the bot answers from."""

    title = models.CharField(max_length=200)
    content = models.TextField()
    source_url = models.URLField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title
