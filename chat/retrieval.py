"""Knowledge retrieval: full-text search over the tenant's passages, fused with vector similarity when on.

`knowledge_search` is the single entry point. Lexical candidates come from the GIN index (any of the
question's terms), pre-ordered in SQL by weighted term coverage and re-ranked here on their index entries
(`chat.lexical`: coverage, title, proximity, all terms first). With an embeddings model configured and
pgvector present, the passages nearest to the question's embedding (`chat.embeddings`) are a second
ranking, and the two are fused by reciprocal rank. A passage is relevant when it covers enough of the
question's content words (`CHAT_RELEVANCE_THRESHOLD`) or, with embeddings, holds a sentence close enough
in meaning to the question (`sentences_measure`); `Retrieval.relevant` gives the passages the bot may answer
from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from itertools import combinations
from typing import Any

from django.conf import settings
from django.db import connection

from chat import embeddings
from chat.lexical import Term, lexical_score, positions_parse, question_terms, vocabulary_get
from chat.models import KnowledgeArticle, KnowledgePassage
from chat.text import base_language, language_detect, sentences_split, tsvector_literal
from netia.prepared import prepared_rows
from netia.tenancy import current_schema

PASSAGE_TARGET_CHARS = 700
CANDIDATES = 50  # per ranking (lexical, vector), fused here
LEXICAL_CANDIDATES = 20  # re-ranked here on their index entries (proximity is not scored in SQL)
TIER_SHARES = (2 / 3, 1 / 3)  # between the AND and the OR query: passages covering this much of the question
MAX_SUBSET_TERMS = 8  # a longer question skips the "most terms" tier (its subsets would be too many)
RRF_K = 60  # reciprocal rank fusion: score = sum of 1 / (RRF_K + rank)
# With embeddings, a passage's best sentence is compared with the best sentences of the other articles among
# this many ranked passages (how much it stands out: `CHAT_EMBEDDING_MIN_STANDOUT`).
SENTENCE_CONTEXT = 8
# A sentence that stands out may be this much less similar than CHAT_EMBEDDING_MIN_SIMILARITY.
STANDOUT_ALLOWANCE = 0.2
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class RetrievedPassage:
    id: int
    article_id: int
    title: str
    content: str
    rank: float
    language: str = "en"
    position: int = 0  # of the passage in its article
    relevance: float = 0.0  # weighted share of the question's content words the passage holds
    similarity: float | None = None  # cosine similarity to the question, when embeddings are on
    # With embeddings: each sentence's cosine similarity to the question (chat.text.sentences_split order),
    # and how much the best one beats the best sentence of any other article among the ranked passages.
    sentence_similarities: tuple[float, ...] | None = None
    standout: float = 0.0

    @property
    def sentence_similarity(self) -> float | None:
        """The best sentence's similarity to the question (None when not measured)."""
        return max(self.sentence_similarities, default=0.0) if self.sentence_similarities is not None else None


@dataclass(frozen=True)
class Retrieval:
    terms: list[Term]
    passages: list[RetrievedPassage]

    def relevant(self) -> list[RetrievedPassage]:
        """The ranked passages relevant enough to answer from; none when the best one is not."""
        return [p for p in self.passages if is_relevant(p)] if self.passages and is_relevant(self.passages[0]) else []


def is_relevant(passage: RetrievedPassage) -> bool:
    """It holds enough of the question's content words, or (embeddings) a sentence meaning what it asks.

    A sentence means it when its similarity reaches CHAT_EMBEDDING_MIN_SIMILARITY, or comes within
    STANDOUT_ALLOWANCE of it while beating every other article's best sentence by CHAT_EMBEDDING_MIN_STANDOUT
    (a paraphrase whose closest sentence is not very close, but much closer than anything else).
    """
    if passage.relevance >= settings.CHAT_RELEVANCE_THRESHOLD:
        return True
    best = passage.sentence_similarity
    if best is None:
        return False
    minimum = settings.CHAT_EMBEDDING_MIN_SIMILARITY
    return best >= minimum or (
        best >= minimum - STANDOUT_ALLOWANCE and passage.standout >= settings.CHAT_EMBEDDING_MIN_STANDOUT
    )


def sentences_measure(passages: list[RetrievedPassage], question: str) -> list[RetrievedPassage]:
    """The passages with their sentences' similarity to the question, when embeddings are on.

    One embeddings request for the sentences not embedded before (each is cached by model and text, so a
    knowledge base's sentences are embedded once); the question's vector is the one the vector search used
    (cached). Without embeddings, or when the request fails (logged and counted by `chat.llm.embed`), the
    passages come back unchanged and relevance is judged on words alone.
    """
    if not passages or all(p.similarity is None for p in passages):
        return passages
    split = [sentences_split(p.content) for p in passages]
    texts = list(dict.fromkeys(sentence for sentences in split for sentence in sentences))
    question_vector = embeddings.question_embedding(question)
    vectors = embeddings.texts_embed(texts, purpose="sentence") if question_vector and texts else None
    if question_vector is None or vectors is None:
        return passages
    by_text = {text: embeddings.cosine(question_vector, vector) for text, vector in zip(texts, vectors, strict=True)}
    measured = [tuple(by_text[s] for s in sentences) for sentences in split]
    best = [max(sims, default=0.0) for sims in measured]
    result = []
    for i, passage in enumerate(passages):
        others = [best[j] for j, other in enumerate(passages) if other.article_id != passage.article_id]
        result.append(
            replace(
                passage,
                sentence_similarities=measured[i],
                # Alone in the ranking (a one-article knowledge base) it stands out from nothing.
                standout=round(best[i] - max(others), 4) if others else 0.0,
            )
        )
    return result


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
    """(Re)build an article's passages and their index entries; returns the number of passages.

    The article's own language (detected, `language` when unclear) chooses stop words and stemmer, so a
    bilingual knowledge base is indexed right in both languages. New passages have no embedding yet: the
    caller queues `chat.tasks.passages_embed` after commit.
    """
    article_language = language_detect(f"{article.title}\n{article.content}", language)
    if article.language != article_language:
        article.language = article_language
        KnowledgeArticle.objects.filter(pk=article.pk).update(language=article_language)
    article.passages.all().delete()
    KnowledgePassage.objects.bulk_create(
        KnowledgePassage(
            article=article,
            position=i,
            content=text,
            search_vector=tsvector_literal(title=article.title, body=text, language=article_language),
        )
        for i, text in enumerate(split_passages(article.content))
    )
    return article.passages.count()


def _state_sql(config: str = "chat_botconfiguration", passage: str = "chat_knowledgepassage") -> str:
    """The knowledge base's version and its newest passage id: together they name its current content (the id
    guards against a version number reused after a rolled-back transaction; ids never are). The tables as
    named (with their schema, or found on the search_path)."""
    return (
        f"SELECT (SELECT knowledge_version FROM {config} WHERE id = 1) AS version,"  # noqa: S608
        f" (SELECT max(id) FROM {passage}) AS newest"
    )


# The state each schema's knowledge base was last seen in, by this process: searches assume it still holds
# (choosing the vocabulary by it) and read the actual state in the same statement as the candidates.
_last_state: dict[str, tuple[int, int]] = {}


def _knowledge_state() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(_state_sql())
        version, newest = cursor.fetchone()
    return version or 0, newest or 0


_COLUMNS = "p.id, p.article_id, a.title, p.content, a.language, p.search_vector::text, p.position"


Row = tuple[int, int, str, str, str, str, int]


def _lexical_candidates(terms: list[Term], wanted: int, *, schema: str) -> tuple[tuple[int, int], list[Row]]:
    """Candidate passages from the GIN index, in tiers, best weighted coverage first (LEXICAL_CANDIDATES).

    First the passages holding every term (an AND query: few, so cheap to score); only when those are
    fewer than `wanted`, the passages holding terms worth at least two thirds of the question's weight,
    then a third; only when still too few, those holding any term (the OR query). Each tier is a GIN index
    scan scored in SQL on its own rows; a later tier runs only if the earlier ones came up short (a
    one-time filter: all tiers are one statement). The candidates are re-ranked by the caller
    (`chat.lexical.lexical_score`). The same statement reads the knowledge base's state, returned first.

    The statement's text depends only on the schema and the numbers of terms and tiers, every value is a
    parameter: it is prepared once per connection for each (netia.prepared; ~0.3 ms of backend CPU instead
    of ~2.5 ms, planning included).
    """
    matches = [_any_of(term.lexemes) for term in terms]
    params: list[Any] = [wanted, LEXICAL_CANDIDATES]
    for term, match in zip(terms, matches, strict=True):
        # Weights go as text cast to numeric: the exact values (and numeric sums) of the literals they once were.
        params += (str(term.weight), match, str(term.weight * 0.3), _any_of(term.lexemes, weight="A"))
    queries = [
        q
        for q in dict.fromkeys([" & ".join(matches), *_coverings(terms, matches, TIER_SHARES), " | ".join(matches)])
        if q
    ]
    params += queries
    found = prepared_rows(_candidates_sql(schema, len(terms), len(queries)), params)
    state = (found[0][0] or 0, found[0][1] or 0)
    return state, [row[2:] for row in found if row[2] is not None]


@lru_cache(maxsize=256)
def _candidates_sql(schema: str, terms: int, tiers: int) -> str:
    """The candidates statement of `_lexical_candidates` for `schema` (its tables named with it).

    Parameters: $1 wanted, $2 the limit, four per term (weight, its lexemes, the weight in titles, its
    lexemes in titles), then one tsquery per tier.
    """
    passage, article, config = (
        f"{connection.ops.quote_name(schema)}.{table}"
        for table in ("chat_knowledgepassage", "chat_knowledgearticle", "chat_botconfiguration")
    )
    score = " + ".join(
        f"${n}::numeric * (p.search_vector @@ ${n + 1}::tsquery)::int"
        f" + ${n + 2}::numeric * (p.search_vector @@ ${n + 3}::tsquery)::int"
        for n in range(3, 3 + 4 * terms, 4)
    )
    # Assembled from fixed fragments, the quoted schema and numbers only; every value is a parameter.
    ctes: list[str] = []
    for i in range(tiers):
        gate = ""
        if i:
            # A later tier runs only while the earlier ones together hold fewer than `wanted` passages.
            earlier = " UNION ALL ".join(f"SELECT id FROM tier{j}" for j in range(i))  # noqa: S608
            ctes.append(f"before{i} AS ({earlier})")
            gate = f" AND (SELECT count(*) FROM before{i}) < $1::int AND p.id NOT IN (SELECT id FROM before{i})"  # noqa: S608
        ctes.append(
            f"tier{i} AS MATERIALIZED (SELECT p.id, {score} AS score FROM {passage} p"  # noqa: S608
            f" WHERE p.search_vector @@ ${3 + 4 * terms + i}::tsquery{gate} ORDER BY score DESC, p.id LIMIT $2::int)"
        )
    union = " UNION ALL ".join(f"SELECT id, score, {i} AS tier FROM tier{i}" for i in range(tiers))  # noqa: S608
    return (
        f"WITH {', '.join(ctes)}, state AS ({_state_sql(config, passage)})"  # noqa: S608
        f" SELECT s.version, s.newest, x.* FROM state s LEFT JOIN (SELECT {_COLUMNS} FROM ({union}) c"
        f" JOIN {passage} p ON p.id = c.id JOIN {article} a ON a.id = p.article_id"
        " ORDER BY c.tier, c.score DESC, p.id LIMIT $2::int) x ON true"
    )


def _coverings(terms: list[Term], matches: list[str], shares: tuple[float, ...]) -> list[str]:
    """For each share, a tsquery matching the passages whose terms weigh at least that share of the question's.

    Each is the OR of the minimal sets of terms reaching the share (no set holds a smaller one that does), in
    order of size, then of the terms' order; "" for a single term or more than MAX_SUBSET_TERMS. `matches`
    are the terms' tsqueries (`_any_of`).
    """
    count = len(terms)
    if not 1 < count <= MAX_SUBSET_TERMS:
        return ["" for _ in shares]
    weights = [term.weight for term in terms]
    # Each set's weight, by bit mask: the weights added in the terms' order, as sum() over the set would.
    sums = [0.0] * (1 << count)
    for mask in range(1, 1 << count):
        high = mask.bit_length() - 1
        sums[mask] = sums[mask ^ (1 << high)] + weights[high]
    needed = [share * sum(weights) for share in shares]
    lowest = min(needed)
    chosen: list[list[tuple[int, ...]]] = [[] for _ in shares]
    found: list[list[int]] = [[] for _ in shares]  # the same sets as bit masks
    for mask, subset in _subsets(count):
        weight = sums[mask]
        if weight < lowest:
            continue
        for k, threshold in enumerate(needed):
            if weight >= threshold and not any(smaller & mask == smaller for smaller in found[k]):
                found[k].append(mask)
                chosen[k].append(subset)
    return [" | ".join("(" + " & ".join(matches[i] for i in subset) + ")" for subset in sets) for sets in chosen]


@cache
def _subsets(count: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """The non-empty sets of `count` terms by size, then in the terms' order: (bit mask, indices)."""
    return tuple(
        (sum(1 << i for i in subset), subset)
        for size in range(1, count + 1)
        for subset in combinations(range(count), size)
    )


def _rows_by_id(ids: list[int]) -> list[Row]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_COLUMNS} FROM chat_knowledgepassage p JOIN chat_knowledgearticle a ON a.id = p.article_id"  # noqa: S608
            " WHERE p.id = ANY(%s)",
            [ids],
        )
        return cursor.fetchall()


def _any_of(lexemes: frozenset[str], weight: str = "") -> str:
    # Lexemes are runs of letters and digits (chat.text), so quoting them needs no escaping.
    return "(" + " | ".join(f"'{lexeme}'{':' + weight if weight else ''}" for lexeme in sorted(lexemes)) + ")"


def _lexical_search(
    query: str, language: str, limit: int, *, schema: str, state: tuple[int, int]
) -> tuple[list[Term], tuple[tuple[int, int], list[Row]]]:
    """The question's terms under the vocabulary of `state`, and (actual state, candidate rows)."""
    vocabulary = vocabulary_get(schema=schema, version=state)
    terms = question_terms(query, language=base_language(language), vocabulary=vocabulary)
    return terms, (_lexical_candidates(terms, limit, schema=schema) if terms else (state, []))


def knowledge_search(*, query: str, language: str, limit: int) -> Retrieval:
    """The passages best answering `query`, best first, with the question's terms.

    With embeddings, the passages' sentences are measured against the question too (`sentences_measure`,
    over the first SENTENCE_CONTEXT passages), which `Retrieval.relevant` then uses.
    """
    if limit <= 0:
        return Retrieval(terms=[], passages=[])
    schema = current_schema()
    state = _last_state.get(schema) or _knowledge_state()
    terms, found = _lexical_search(query, language, limit, schema=schema, state=state)
    if found[0] != state:  # the knowledge base changed since this process last looked: search it as it is now
        state = found[0]
        terms, found = _lexical_search(query, language, limit, schema=schema, state=state)
    _last_state[schema] = state
    rows = {row[0]: row for row in found[1]}
    nearest = embeddings.passages_nearest(query=query, limit=CANDIDATES)
    missing = [pk for pk, _ in nearest if pk not in rows]
    rows.update((row[0], row) for row in (_rows_by_id(missing) if missing else []))
    if not rows:
        return Retrieval(terms=terms, passages=[])

    wanted = {lexeme for term in terms for lexeme in term.lexemes}
    scores = {pk: lexical_score(terms, positions_parse(row[5], wanted)) for pk, row in rows.items()}
    lexical = sorted((pk for pk in rows if scores[pk].coverage > 0), key=lambda pk: (scores[pk].sort_key, -pk))
    lexical.reverse()
    similarity = dict(nearest)
    fused: dict[int, float] = {}
    for ranking in (lexical, [pk for pk, _ in nearest]):
        for position, pk in enumerate(ranking, start=1):
            fused[pk] = fused.get(pk, 0.0) + 1 / (RRF_K + position)
    ranked = sorted(fused, key=lambda pk: (-fused[pk], pk))
    ranked = ranked[: max(limit, SENTENCE_CONTEXT) if nearest else limit]
    passages = sentences_measure(
        [
            RetrievedPassage(
                id=pk,
                article_id=rows[pk][1],
                title=rows[pk][2],
                content=rows[pk][3],
                language=rows[pk][4] or base_language(language),
                position=rows[pk][6],
                rank=fused[pk],
                relevance=round(scores[pk].coverage, 4),
                similarity=similarity.get(pk),
            )
            for pk in ranked
        ],
        query,
    )
    return Retrieval(terms=terms, passages=passages[:limit])


def passages_search(*, query: str, language: str, limit: int) -> list[RetrievedPassage]:
    """The ranked passages of `knowledge_search`, relevant or not."""
    return knowledge_search(query=query, language=language, limit=limit).passages
