"""Passage embeddings in pgvector: stored on write, searched by cosine distance, re-made when the model changes.

Optional twice over: it needs `OPENAI_EMBEDDING_MODEL` (served by the same OpenAI-compatible API as the chat
model) and the pgvector extension. The `embedding` column is not a Django field: migration 0005 (and
`manage.py chat_embed_passages`, for a server that gained pgvector later) adds it only where the extension
can be created, so everything else works without it. Passages remember which model embedded them
(`embedding_model`); search uses only those of the current model, and the backfill re-embeds the others.

No API call runs inside a transaction: `passages_embed` reads the passages, calls the API, then stores each
vector in a short statement that re-checks the passage is unchanged (the outbox pattern).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction

from chat import llm
from netia.tenancy import current_schema

logger = structlog.get_logger(__name__)

BATCH = 64  # passages per embeddings request
_QUERY_CACHE_SECONDS = 24 * 3600
_ready: dict[str, tuple[bool, float]] = {}  # schema -> (has the vector column, checked at)
_RECHECK_SECONDS = 60.0


def model() -> str:
    """The configured embeddings model, or "" when embeddings are off.

    On with `OPENAI_EMBEDDING_MODEL` and either an API key (OpenAI) or a base URL (a self-hosted
    OpenAI-compatible server such as Ollama needs no key; then the chat model stays off and the offline
    responder answers, using the embeddings too).
    """
    if not settings.OPENAI_EMBEDDING_MODEL:
        return ""
    return settings.OPENAI_EMBEDDING_MODEL if llm.llm_configured() or settings.OPENAI_BASE_URL else ""


def pgvector_available(cursor: Any) -> bool:
    """Whether this PostgreSQL server can create the pgvector extension (or already has it)."""
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    return cursor.fetchone() is not None


def vector_column_ensure(cursor: Any) -> bool:
    """Create pgvector (in `public`) and the current schema's embedding column when possible; True if present.

    Without the extension, or without the right to create it, nothing changes and False is returned.
    """
    if _has_vector_column(cursor):
        return True
    if not pgvector_available(cursor):
        return False
    try:
        with transaction.atomic():  # a savepoint: a refused CREATE EXTENSION leaves the caller's transaction usable
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
            cursor.execute("ALTER TABLE chat_knowledgepassage ADD COLUMN IF NOT EXISTS embedding public.vector")
    except DatabaseError as exc:
        logger.warning("pgvector_unavailable", error=str(exc)[:200])
        return False
    _ready.pop(current_schema(), None)
    return True


def _has_vector_column(cursor: Any) -> bool:
    cursor.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = 'chat_knowledgepassage'::regclass"
        " AND attname = 'embedding' AND NOT attisdropped"
    )
    return cursor.fetchone() is not None


def vector_column_ready() -> bool:
    """Whether the current schema's passages have the embedding column (cached a minute when absent)."""
    schema = current_schema()
    known = _ready.get(schema)
    if known is not None and (known[0] or time.monotonic() - known[1] < _RECHECK_SECONDS):
        return known[0]
    with connection.cursor() as cursor:
        ready = _has_vector_column(cursor)
    _ready[schema] = (ready, time.monotonic())
    return ready


def enabled() -> bool:
    """Embeddings are configured and this schema can store them."""
    return bool(model()) and vector_column_ready()


def _literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def question_embedding(question: str) -> list[float] | None:
    """The question's embedding (cached by model and text), or None when the API fails."""
    name = model()
    key = f"chat:qemb:{name}:{hashlib.sha256(question.encode()).hexdigest()}"
    cached = cache.get(key)
    if cached is not None:
        return list(cached)
    try:
        (vector,) = llm.embed(texts=[question], model=name, purpose="question")
    except llm.LLMUnavailable:
        return None
    cache.set(key, vector, timeout=_QUERY_CACHE_SECONDS)
    return vector


def _text_key(name: str, text: str) -> str:
    return f"chat:temb:{name}:{hashlib.sha256(text.encode()).hexdigest()}"


def texts_embed(texts: list[str], *, purpose: str) -> list[list[float]] | None:
    """An embedding per text (the question's sentences to quote, ...), or None when embeddings are off or fail.

    Cached by model and text hash: a text already embedded is never sent again, the others go in one request.
    A failure is logged and counted by `llm.embed` (label `purpose`); the caller falls back to words alone.
    """
    name = model()
    if not name or not texts:
        return None
    keys = [_text_key(name, text) for text in texts]
    found = cache.get_many(keys)
    missing = list(dict.fromkeys(text for text, key in zip(texts, keys, strict=True) if key not in found))
    if missing:
        try:
            vectors = llm.embed(texts=missing, model=name, purpose=purpose)
        except llm.LLMUnavailable:
            return None
        fresh = {_text_key(name, text): vector for text, vector in zip(missing, vectors, strict=True)}
        cache.set_many(fresh, timeout=_QUERY_CACHE_SECONDS)
        found.update(fresh)
    return [list(found[key]) for key in keys]


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (0 when either is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
    return dot / norm if norm else 0.0


def passages_nearest(*, query: str, limit: int) -> list[tuple[int, float]]:
    """(passage id, cosine similarity) of the passages nearest to the question; [] when embeddings are off."""
    if not enabled() or not query.strip():
        return []
    vector = question_embedding(query)
    if vector is None:  # degrade to full-text search alone; the failure is logged and counted
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, 1 - (embedding <=> %(v)s::public.vector) FROM chat_knowledgepassage"
            " WHERE embedding_model = %(model)s AND embedding IS NOT NULL"
            " AND vector_dims(embedding) = %(dims)s"
            " ORDER BY embedding <=> %(v)s::public.vector, id LIMIT %(limit)s",
            {"v": _literal(vector), "model": model(), "dims": len(vector), "limit": limit},
        )
        return [(pk, float(similarity)) for pk, similarity in cursor.fetchall()]


def passages_embed(*, article_id: int | None = None, limit: int | None = None) -> int:
    """Embed the current schema's passages not yet embedded with the current model; returns how many.

    `article_id` restricts it to one article; `limit` bounds the work of one call. An API failure raises
    llm.LLMUnavailable after storing the batches done so far (a retry continues where it stopped).
    """
    name = model()
    if not name or not vector_column_ready():
        return 0
    done = 0
    while limit is None or done < limit:
        batch = BATCH if limit is None else min(BATCH, limit - done)
        rows = _stale(article_id=article_id, model=name, batch=batch)
        if not rows:
            break
        vectors = llm.embed(texts=[f"{title}\n{content}" for _, title, content in rows], model=name, purpose="passage")
        stored = 0
        with connection.cursor() as cursor:
            for (pk, _, content), vector in zip(rows, vectors, strict=True):
                cursor.execute(
                    "UPDATE chat_knowledgepassage SET embedding = %s::public.vector, embedding_model = %s"
                    " WHERE id = %s AND content = %s",
                    [_literal(vector), name, pk, content],
                )
                stored += cursor.rowcount
        done += stored
        if not stored:  # every passage of the batch changed meanwhile: whoever changed them queued their own
            break
    if done:
        logger.info("passages_embedded", schema=current_schema(), count=done, model=name)
    return done


def _stale(*, article_id: int | None, model: str, batch: int) -> list[tuple[int, str, str]]:
    where = "p.embedding_model <> %s OR p.embedding IS NULL"
    params: list[Any] = [model]
    if article_id is not None:
        where = f"({where}) AND p.article_id = %s"
        params.append(article_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, a.title, p.content FROM chat_knowledgepassage p"  # noqa: S608
            f" JOIN chat_knowledgearticle a ON a.id = p.article_id WHERE {where} ORDER BY p.id LIMIT %s",
            [*params, batch],
        )
        return cursor.fetchall()


def stale_count() -> int:
    """Passages of the current schema waiting for an embedding with the current model."""
    name = model()
    if not name or not vector_column_ready():
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM chat_knowledgepassage WHERE embedding_model <> %s OR embedding IS NULL", [name]
        )
        (count,) = cursor.fetchone()
    return int(count)
