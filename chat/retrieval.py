"""Knowledge retrieval: PostgreSQL full-text search over the tenant's passages.

`passages_search` is the single entry point, so another retriever (pgvector embeddings) can replace it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db.models import F, Value

from chat.intents import normalize, tokenize
from chat.models import KnowledgeArticle, KnowledgePassage

# Bot languages with a built-in PostgreSQL text-search configuration; others use "simple".
SEARCH_CONFIGS = {
    "en": "english",
    "es": "spanish",
    "fr": "french",
    "de": "german",
    "pt": "portuguese",
    "it": "italian",
    "nl": "dutch",
}
PASSAGE_TARGET_CHARS = 700
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class RetrievedPassage:
    id: int
    article_id: int
    title: str
    content: str
    rank: float


def search_config_for(language: str) -> str:
    return SEARCH_CONFIGS.get(language.split("-")[0].lower(), "simple")


def split_passages(content: str, target_chars: int = PASSAGE_TARGET_CHARS) -> list[str]:
    """Split text into passages of at most about `target_chars`, on paragraph then sentence boundaries."""
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", content):
        paragraph = " ".join(paragraph.split())
        if len(paragraph) <= target_chars:
            units.extend([paragraph] if paragraph else [])
        else:
            units.extend(sentence for sentence in _SENTENCE_END.split(paragraph) if sentence)
    passages: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + 1 + len(unit) > target_chars:
            passages.append(current)
            current = unit
        else:
            current = f"{current}\n{unit}" if current else unit
    if current:
        passages.append(current)
    return passages


def article_index(*, article: KnowledgeArticle, language: str) -> int:
    """(Re)build an article's passages and their search vectors; returns the number of passages.

    Vectors are built from accent- and case-folded text (the embedded PostgreSQL has no `unaccent`), and
    queries are folded the same way, so "cafe" finds "Café".
    """
    config = search_config_for(language)
    article.passages.all().delete()
    passages = KnowledgePassage.objects.bulk_create(
        KnowledgePassage(article=article, position=i, content=text)
        for i, text in enumerate(split_passages(article.content))
    )
    title = normalize(article.title)
    for passage in passages:
        KnowledgePassage.objects.filter(pk=passage.pk).update(
            search_vector=SearchVector(Value(title), weight="A", config=config)
            + SearchVector(Value(normalize(passage.content)), weight="B", config=config)
        )
    return len(passages)


def passages_search(*, query: str, language: str, limit: int) -> list[RetrievedPassage]:
    """The passages best matching any word of `query`, best first (ranked by cover density)."""
    words = [w for w in tokenize(query) if len(w) > 1 and w.isalnum()]
    if not words or limit <= 0:
        return []
    # Any word may match (OR); ranking rewards passages that cover more of them, and title hits.
    search = SearchQuery(
        " | ".join(f"'{w}'" for w in dict.fromkeys(words)), search_type="raw", config=search_config_for(language)
    )
    rows = (
        KnowledgePassage.objects.filter(search_vector=search)
        .annotate(rank=SearchRank(F("search_vector"), search, cover_density=True))
        .select_related("article")
        .order_by("-rank", "id")[:limit]
    )
    return [
        RetrievedPassage(id=p.pk, article_id=p.article_id, title=p.article.title, content=p.content, rank=p.rank)
        for p in rows
    ]
