"""Lexical relevance: the question's weighted terms and how well a passage covers them.

A question becomes terms: each content word (stop and question words carry no weight) with its stems in the
question's language and the bot's, plus a correction when the word is a likely typo of a word of the
knowledge base. Terms are weighted by inverse document frequency over the tenant's passages, so a word that
many passages share counts little. A passage's score, all from its index entry:

- coverage: the weighted share of the question's terms it contains (title or body): the relevance that the
  threshold (`CHAT_RELEVANCE_THRESHOLD`) is compared with;
- title coverage: the share found in its article's title (titles weigh more than bodies);
- proximity: how close together the matched terms stand (a phrase beats scattered words);
- and passages holding every term rank above those holding only some.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from django.db import connection

from chat.text import base_language, is_stopword, language_detect, searchable, stem, surface_words, zipf

TITLE_WEIGHT = 0.3  # a term in the title adds this much of its weight again
PROXIMITY_WEIGHT = 0.2  # matched terms standing side by side add up to this much
INFORMATIVENESS_COMMON = 6.5  # Zipf frequency at which a word would count nothing (floored)
INFORMATIVENESS_FLOOR = 0.15
COMPLETION_CERTAINTY = 0.5
REAL_WORD_ZIPF = 2.5  # a word at least this frequent in everyday language is not taken for a typo
_MIN_CORRECTABLE = 4  # shorter words are never "corrected" (too many near neighbours)
_TSVECTOR_ENTRY = re.compile(r"'([^']+)':([0-9A-D,]+)")


@dataclass(frozen=True)
class Term:
    """One content word of the question: the lexemes that count as it, and its weight."""

    word: str
    lexemes: frozenset[str]
    weight: float


@dataclass
class Vocabulary:
    """The lexemes of a tenant's passages with their document frequencies (for weights and typo repair)."""

    passages: int
    frequency: dict[str, int]
    _deletions: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _sorted: list[str] = field(default_factory=list, repr=False)

    def weight(self, lexemes: Iterable[str]) -> float:
        """BM25's inverse document frequency of a term (its most frequent lexeme).

        A word the knowledge base never uses weighs as much as its rarest words, not more: what makes such a
        word decisive is how rare it is in everyday language (`informativeness`), not that the base lacks it.
        """
        df = max((self.frequency.get(lexeme, 0) for lexeme in lexemes), default=0)
        return math.log(1 + (self.passages - max(df, 1) + 0.5) / (max(df, 1) + 0.5))

    def completions(self, prefix: str, most: int = 3) -> set[str]:
        """The most frequent lexemes starting with `prefix` ("treat" -> "treatment"): stems that differ in ending."""
        if len(prefix) < _MIN_CORRECTABLE:
            return set()
        if not self._sorted:
            self._sorted = sorted(self.frequency)
        start = bisect.bisect_left(self._sorted, prefix)
        found = []
        for lexeme in self._sorted[start:]:
            if not lexeme.startswith(prefix):
                break
            found.append(lexeme)
        return set(sorted(found, key=lambda lexeme: -self.frequency[lexeme])[:most])

    def relatives(self, word: str) -> set[str]:
        """Lexemes that differ from `word` only in a short ending (at most two letters each past a shared
        stem of 5+ letters): derivations the stemmer keeps apart ("pregnant" ~ "pregnanc", "cancel" ~
        "cancell")."""
        if len(word) < _MIN_CORRECTABLE + 2:
            return set()
        if not self._sorted:
            self._sorted = sorted(self.frequency)
        found: set[str] = set()
        for cut in range(max(_MIN_CORRECTABLE + 1, len(word) - 2), len(word)):
            prefix = word[:cut]
            start = bisect.bisect_left(self._sorted, prefix)
            for lexeme in self._sorted[start:]:
                if not lexeme.startswith(prefix):
                    break
                if lexeme != word and len(lexeme) - cut <= 2:
                    found.add(lexeme)
        return found

    def longest_prefix(self, word: str) -> str | None:
        """The longest lexeme (4+ letters) `word` begins with, but for an ending of at most three letters
        ("cerrais" -> "cerr": an inflection the stemmer kept; not "toothbrush" -> "tooth")."""
        for end in range(len(word) - 1, max(_MIN_CORRECTABLE, len(word) - 3) - 1, -1):
            if word[:end] in self.frequency:
                return word[:end]
        return None

    def correction(self, word: str) -> str | None:
        """The knowledge base's lexeme one edit (insert, delete, substitute, swap) away from `word`, if any.

        Candidates share a one-deletion variant (the symmetric-delete method); the most frequent wins.
        """
        if len(word) < _MIN_CORRECTABLE:
            return None
        if not self._deletions:
            for lexeme in self.frequency:
                if len(lexeme) >= _MIN_CORRECTABLE - 1:
                    for variant in _deletes(lexeme):
                        self._deletions.setdefault(variant, set()).add(lexeme)
        candidates = {c for variant in _deletes(word) for c in self._deletions.get(variant, ())}
        candidates = {c for c in candidates if c != word and _one_edit(word, c)}
        return max(sorted(candidates), key=lambda c: self.frequency[c]) if candidates else None


def _deletes(word: str) -> set[str]:
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance exactly one (given a != b)."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


_cache: OrderedDict[tuple[str, Hashable], Vocabulary] = OrderedDict()
_CACHE_SIZE = 64


def vocabulary_get(*, schema: str, version: Hashable) -> Vocabulary:
    """The current schema's vocabulary, built once per knowledge-base version (per process)."""
    key = (schema, version)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_knowledgepassage")
        (passages,) = cursor.fetchone()
        cursor.execute("SELECT word, ndoc FROM ts_stat('SELECT search_vector FROM chat_knowledgepassage')")
        vocabulary = Vocabulary(passages=passages, frequency=dict(cursor.fetchall()))
    _cache[key] = vocabulary
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return vocabulary


def question_terms(question: str, *, language: str, vocabulary: Vocabulary) -> list[Term]:
    """The question's content words as weighted terms, in order of appearance."""
    languages = list(dict.fromkeys([language_detect(question, language), base_language(language)]))
    terms: dict[frozenset[str], Term] = {}
    for word, written in surface_words(question):
        if is_stopword(word, languages) or (len(word) < 2 and not word.isdigit()) or not searchable(word):
            continue
        stems = {stem(word, lang) for lang in languages} | {word}
        known = {s for s in stems if s in vocabulary.frequency}
        certainty = 1.0
        if not known and not word.isdigit():
            known, certainty = _repair(word, written, stems, languages, vocabulary)
        lexemes = frozenset(known or stems)
        if lexemes not in terms:
            weight = vocabulary.weight(known) * informativeness(written, languages) * certainty
            terms[lexemes] = Term(word=word, lexemes=lexemes, weight=weight)
    return list(terms.values())


def informativeness(word: str, languages: list[str]) -> float:
    """How much a word says about a topic, from its frequency in everyday language (wordfreq's Zipf scale).

    Rare words ("skateboards", "botox": Zipf <= 3.5) count fully; everyday words ("happens", "today":
    about 5 and up) count a fraction, so a question is judged by the words that name what it is about.
    """
    frequency = zipf(word, languages)
    return min(1.0, max(INFORMATIVENESS_FLOOR, (INFORMATIVENESS_COMMON - frequency) / (INFORMATIVENESS_COMMON - 3.5)))


def _repair(
    word: str, written: str, stems: set[str], languages: list[str], vocabulary: Vocabulary
) -> tuple[set[str], float]:
    """Lexemes of the knowledge base an unknown word probably stands for, and how sure that is.

    A typo (one edit from a lexeme, and not itself a word of the language: "ship" is no typo of "shop") or
    a compound glued to a stop word ("tuneup") stands for the word; a longer lexeme it begins ("treat" ->
    "treatment") or a shorter one it begins with ("cerrais" -> "cerr") is a related word: it counts half.
    """
    if zipf(written, languages) < REAL_WORD_ZIPF:
        found = {c for s in sorted(stems, key=len, reverse=True) if (c := vocabulary.correction(s))}
        if found:
            return found, 1.0
        for cut in range(3, len(word) - 1):  # "tuneup" -> "tune" + "up"
            head = {stem(word[:cut], lang) for lang in languages} & vocabulary.frequency.keys()
            if head and is_stopword(word[cut:], languages):
                return head, 1.0
    found = {c for s in stems for c in vocabulary.completions(s)}
    found |= {p for s in stems if (p := vocabulary.longest_prefix(s))}
    found = found or {r for s in stems for r in vocabulary.relatives(s)}
    return found, COMPLETION_CERTAINTY if found else 1.0


@dataclass(frozen=True)
class LexicalScore:
    coverage: float
    title_coverage: float
    proximity: float
    all_terms: bool

    @property
    def score(self) -> float:
        return self.coverage + TITLE_WEIGHT * self.title_coverage + PROXIMITY_WEIGHT * self.proximity

    @property
    def sort_key(self) -> tuple[bool, float]:
        return (self.all_terms, self.score)


def positions_parse(tsvector: str, lexemes: Iterable[str] | None = None) -> dict[str, list[tuple[int, bool]]]:
    """A tsvector's text form as {lexeme: [(position, in_title)]}; only `lexemes` when given (faster)."""
    if lexemes is None:
        entries = _TSVECTOR_ENTRY.findall(tsvector)
    else:
        entries = []
        for lexeme in lexemes:
            # Entries read "'lexeme':1A,5 'next':..." and lexemes hold no quote, so "'lexeme':" starts one.
            start = tsvector.find(f"'{lexeme}':")
            if start >= 0:
                start += len(lexeme) + 3
                end = tsvector.find(" ", start)
                entries.append((lexeme, tsvector[start : end if end >= 0 else len(tsvector)]))
    parsed: dict[str, list[tuple[int, bool]]] = {}
    for lexeme, marks in entries:
        parsed[lexeme] = [(int(m.rstrip("ABCD")), m.endswith("A")) for m in marks.split(",")]
    return parsed


def lexical_score(terms: list[Term], positions: dict[str, list[tuple[int, bool]]]) -> LexicalScore:
    """How well a passage (its parsed index entry) covers the question's terms."""
    total = sum(t.weight for t in terms)
    if not terms or total <= 0:
        return LexicalScore(0.0, 0.0, 0.0, False)
    matched: list[tuple[Term, list[int]]] = []
    in_title = 0.0
    for term in terms:
        hits = [p for lexeme in term.lexemes for p in positions.get(lexeme, ())]
        if hits:
            matched.append((term, sorted(position for position, _ in hits)))
            if any(title for _, title in hits):
                in_title += term.weight
    covered = sum(term.weight for term, _ in matched)
    return LexicalScore(
        coverage=covered / total,
        title_coverage=in_title / total,
        proximity=_proximity([hits for _, hits in matched]) * covered / total,
        all_terms=len(matched) == len(terms),
    )


def _proximity(position_lists: list[list[int]]) -> float:
    """1 when the matched terms stand side by side, falling with the narrowest window holding them all."""
    if len(position_lists) < 2:
        return 0.0
    events = sorted((p, i) for i, positions in enumerate(position_lists) for p in positions)
    need, counts, have, best, left = len(position_lists), [0] * len(position_lists), 0, math.inf, 0
    for right in range(len(events)):
        term = events[right][1]
        counts[term] += 1
        have += counts[term] == 1
        while have == need:
            best = min(best, events[right][0] - events[left][0])
            counts[events[left][1]] -= 1
            have -= counts[events[left][1]] == 0
            left += 1
    return min(1.0, (need - 1) / best) if best else 1.0
