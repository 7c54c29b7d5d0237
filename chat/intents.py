"""Keyword-based intent detection for visitor messages, configurable per tenant.

Pure Python (no Django) so it can be imported and benchmarked alone. A tenant's bot configuration stores
``{intent: [keyword, ...]}`` overrides; :func:`effective_keywords` lays them over
:data:`DEFAULT_INTENT_KEYWORDS` (data, in `chat.intent_keywords`) and :func:`classifier_for` compiles the
result once per configuration version.

Matching works on normalised text (see :func:`normalize`): case-, accent- and punctuation-insensitive, and on
whole words and whole phrases only, so "price" never matches "priceless" and "book" never matches "facebook".
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from chat.intent_keywords import DEFAULT_INTENT_KEYWORDS, FALLBACK_INTENTS, PRIORITY_INTENTS, TIE_BREAK_ORDER

OTHER = "other"


_APOSTROPHES = "'\u2019\u02bc\u2018`"
# English contractions are glued ("don't" -> "dont") so keywords work with or without the apostrophe; any
# other apostrophe separates words so French elision works ("l'adresse" -> "l adresse").
_CONTRACTION_RE = re.compile(rf"(?<=[^\W_])[{_APOSTROPHES}](?=(?:s|t|m|re|ve|ll|d)\b)")
_TOKEN_RE = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Split text into normalised word tokens (casefolded, accents and punctuation removed)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold()
    text = _CONTRACTION_RE.sub("", text)
    return _TOKEN_RE.findall(text)


@lru_cache(maxsize=1024)
def normalize(text: str) -> str:
    """Return text as space-separated normalised tokens, the form every keyword comparison uses.

    Memoised: a turn normalises the same question for each phrase list and the cache key, and the same
    keyword lists on every turn.
    """
    return " ".join(tokenize(text))


@lru_cache(maxsize=256)
def _needles(phrases: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], Mapping[str, tuple[int, ...]]]:
    """(phrase, " normalised phrase ") for each phrase with words, first spelling of each only; and the indexes
    of those needles by their first word (a needle occurs only where its first word is one of the text's)."""
    needles: list[tuple[str, str]] = []
    by_first: dict[str, list[int]] = {}
    seen: set[str] = set()
    for phrase in phrases:
        needle = normalize(phrase)
        if needle and needle not in seen:
            seen.add(needle)
            by_first.setdefault(needle.split(" ", 1)[0], []).append(len(needles))
            needles.append((phrase, f" {needle} "))
    return tuple(needles), MappingProxyType({word: tuple(indexes) for word, indexes in by_first.items()})


def contains_phrase(text: str, phrases: Iterable[str]) -> list[str]:
    """Return the phrases (as given, in given order, without duplicates) occurring in text as whole words."""
    normalized = normalize(text)
    needles, by_first = _needles(tuple(phrases))
    haystack = f" {normalized} "
    found = {i for word in normalized.split(" ") for i in by_first.get(word, ()) if needles[i][1] in haystack}
    return [needles[i][0] for i in sorted(found)]


@dataclass(frozen=True, slots=True)
class IntentResult:
    """The outcome of classifying one message.

    ``matched`` holds the chosen intent's keywords (as configured) in order of appearance; ``scores`` maps
    every intent that matched anything to its number of distinct matched keywords.
    """

    intent: str
    matched: tuple[str, ...]
    scores: dict[str, int]


class IntentClassifier:
    """A keyword set compiled into a token lookup table; build once per configuration, classify many times."""

    __slots__ = ("_lexicon", "_order", "_phrase_lengths")

    def __init__(
        self,
        lexicon: Mapping[str, tuple[tuple[str, str], ...]],
        phrase_lengths: Mapping[str, tuple[int, ...]],
        order: Mapping[str, int],
    ) -> None:
        """Store a compiled lexicon; use :meth:`from_keywords` rather than calling this directly."""
        self._lexicon = lexicon
        self._phrase_lengths = phrase_lengths
        self._order = order

    @classmethod
    def from_keywords(cls, mapping: Mapping[str, Iterable[str]]) -> IntentClassifier:
        """Compile a complete ``{intent: [keyword, ...]}`` mapping; effective_keywords adds the defaults."""
        lexicon: dict[str, list[tuple[str, str]]] = {}
        lengths: dict[str, set[int]] = {}
        for intent, keywords in mapping.items():
            _check_intent(intent)
            if isinstance(keywords, str):
                raise TypeError(f"keywords for {intent!r} must be a list of strings, not a string")
            for keyword in keywords:
                tokens = tokenize(keyword)
                if not tokens:
                    continue
                key = " ".join(tokens)
                entries = lexicon.setdefault(key, [])
                # The first spelling of a keyword within an intent is the one IntentResult.matched reports.
                if all(existing != intent for existing, _ in entries):
                    entries.append((intent, keyword))
                if len(tokens) > 1:
                    lengths.setdefault(tokens[0], set()).add(len(tokens))
        # Rank: priority intents first, then the fixed tie-break order, then tenant-defined intents as given,
        # then the fallback intents.
        ranked = [i for i in PRIORITY_INTENTS if i in mapping]
        ranked += [i for i in TIE_BREAK_ORDER if i in mapping]
        ranked += [i for i in mapping if i not in ranked and i not in FALLBACK_INTENTS]
        ranked += [i for i in FALLBACK_INTENTS if i in mapping]
        return cls(
            lexicon=MappingProxyType({k: tuple(v) for k, v in lexicon.items()}),
            # Longest first, so the longest phrase starting at a position wins.
            phrase_lengths=MappingProxyType({k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()}),
            order=MappingProxyType({intent: rank for rank, intent in enumerate(ranked)}),
        )

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents this classifier can return besides "other", in tie-break order."""
        return tuple(self._order)

    def classify(self, text: str) -> IntentResult:
        """Return the message's intent and the keywords that decided it.

        Tokens are scanned left to right; at each position the longest configured phrase wins and its words
        are consumed, so "where is my order" counts for support, not also "where" for location. An intent's
        score is its number of distinct matched keywords. The chosen intent is:

        1. human_handoff if it matched, else complaint if it matched (they outrank everything);
        2. otherwise the highest score among the other intents, ties broken by TIE_BREAK_ORDER and then by the
           order tenant-defined intents appear in the configuration;
        3. greeting only when nothing else matched;
        4. "other", with no matched keywords, when no keyword matched.
        """
        tokens = tokenize(text)
        lexicon = self._lexicon
        phrase_lengths = self._phrase_lengths
        hits: dict[str, list[str]] = {}
        i, n = 0, len(tokens)
        while i < n:
            token = tokens[i]
            step = 1
            entries = None
            for length in phrase_lengths.get(token, ()):
                if i + length <= n:
                    entries = lexicon.get(" ".join(tokens[i : i + length]))
                    if entries is not None:
                        step = length
                        break
            if entries is None:
                entries = lexicon.get(token)
            if entries is not None:
                for intent, keyword in entries:
                    found = hits.setdefault(intent, [])
                    if keyword not in found:
                        found.append(keyword)
            i += step
        if not hits:
            return IntentResult(intent=OTHER, matched=(), scores={})
        order = self._order
        best = min(hits, key=lambda intent: _rank(intent, len(hits[intent]), order[intent]))
        return IntentResult(
            intent=best,
            matched=tuple(hits[best]),
            scores={intent: len(found) for intent, found in hits.items()},
        )


def _rank(intent: str, score: int, position: int) -> tuple[int, int, int]:
    """Sort key for choosing among matched intents: tier, then more keywords, then fixed position."""
    if intent in PRIORITY_INTENTS:
        tier = 0
    elif intent in FALLBACK_INTENTS:
        tier = 2
    else:
        tier = 1
    # Within the priority tier the fixed order decides, so a handoff request always beats a complaint.
    return (tier, 0 if tier == 0 else -score, position)


def _check_intent(intent: object) -> None:
    """Reject intent codes that cannot be stored or returned meaningfully."""
    if not isinstance(intent, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,49}", intent):
        raise ValueError(f"intent codes are lowercase identifiers, got {intent!r}")
    if intent == OTHER:
        raise ValueError(f"{OTHER!r} is what no match returns; it cannot have keywords")


def effective_keywords(overrides: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """Lay a tenant's ``{intent: keywords}`` overrides over the defaults.

    An intent present in ``overrides`` uses exactly that list (the dashboard edits the full list, so adding
    and removing keywords are both just saving the list; an empty list disables the intent). Intents absent
    from ``overrides`` keep their default keywords; new intent codes are added.
    """
    merged = {intent: list(keywords) for intent, keywords in DEFAULT_INTENT_KEYWORDS.items()}
    for intent, keywords in (overrides or {}).items():
        if isinstance(keywords, str):
            raise TypeError(f"keywords for {intent!r} must be a list of strings, not a string")
        merged[intent] = list(keywords)
    return {intent: keywords for intent, keywords in merged.items() if keywords}


@lru_cache(maxsize=1)
def default_classifier() -> IntentClassifier:
    """Return the classifier for the default keywords, compiled once per process."""
    return IntentClassifier.from_keywords(DEFAULT_INTENT_KEYWORDS)


_CACHE_SIZE = 512
_cache: OrderedDict[Hashable, IntentClassifier] = OrderedDict()
_cache_lock = threading.Lock()


def classifier_for(mapping_key: Hashable, overrides: Mapping[str, Iterable[str]] | None) -> IntentClassifier:
    """Return the compiled classifier for a tenant's keyword overrides, building it once per key.

    ``mapping_key`` must change whenever ``overrides`` changes, e.g. ``(schema_name, config.updated_at)``;
    a key seen before returns its cached classifier without looking at ``overrides``.
    """
    with _cache_lock:
        classifier = _cache.get(mapping_key)
        if classifier is not None:
            _cache.move_to_end(mapping_key)
            return classifier
    # Compiled outside the lock: two threads racing on a new key both build it, which is harmless.
    classifier = IntentClassifier.from_keywords(effective_keywords(overrides))
    with _cache_lock:
        _cache[mapping_key] = classifier
        _cache.move_to_end(mapping_key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return classifier


def classify(text: str, overrides: Mapping[str, Iterable[str]] | None = None) -> IntentResult:
    """Classify one message with the defaults, or with overrides compiled uncached (tests, one-off use)."""
    if overrides is None:
        return default_classifier().classify(text)
    return IntentClassifier.from_keywords(effective_keywords(overrides)).classify(text)
