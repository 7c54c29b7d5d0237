"""Backfill passage embeddings: `manage.py chat_embed_passages [--schema NAME ...] [--limit N]`.

For every tenant (or the named schemas): adds the pgvector column where it is missing and the extension can
be created (a server that gained pgvector after migrating), then embeds every passage that has no embedding
of the current `OPENAI_EMBEDDING_MODEL` (new passages, or all of them after the model changed).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context

from chat import embeddings, llm
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Embed knowledge passages missing an embedding of the current model (adds the pgvector column if needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", action="append", default=[], help="Only this tenant schema (repeatable).")
        parser.add_argument("--limit", type=int, default=None, help="At most this many passages per schema.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not embeddings.model():
            raise CommandError("Set OPENAI_EMBEDDING_MODEL (and OPENAI_API_KEY or OPENAI_BASE_URL) to embed passages.")
        schemas = options["schema"] or list(
            Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list("schema_name", flat=True)
        )
        total = 0
        for schema in schemas:
            with schema_context(schema):
                with connection.cursor() as cursor:
                    if not embeddings.vector_column_ensure(cursor):
                        raise CommandError(
                            "pgvector is not available on this PostgreSQL server (CREATE EXTENSION vector)."
                        )
                try:
                    done = embeddings.passages_embed(limit=options["limit"])
                except llm.LLMUnavailable as exc:
                    raise CommandError(f"{schema}: the embeddings API failed ({exc}); run the command again.") from exc
                left = embeddings.stale_count()
            total += done
            self.stdout.write(f"{schema}: {done} passages embedded, {left} left")
        self.stdout.write(self.style.SUCCESS(f"{total} passages embedded with {embeddings.model()}"))
