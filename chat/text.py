"""Text analysis for retrieval: words, languages, stop words and Snowball stems.

The knowledge index stores lexemes made here (not by a PostgreSQL text-search configuration), so the index,
questions and the offline responder's sentence matching all share one analysis, per article language:
accent- and case-folded words (`chat.intents.tokenize`), stop and question words dropped (their positions
kept, so phrase distances stay true), the rest stemmed with the language's Snowball stemmer (PyStemmer).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache, wraps
from typing import Any, Generic, TypeVar

import Stemmer

from chat.intents import _CONTRACTION_RE as _CONTRACTION
from chat.intents import _TOKEN_RE as _TOKEN
from chat.intents import tokenize
from chat.stopwords import STOPWORDS

# Languages with a Snowball stemmer and a stop-word list; any other language is indexed unstemmed.
SNOWBALL = {
    "en": "english",
    "es": "spanish",
    "fr": "french",
    "de": "german",
    "pt": "portuguese",
    "it": "italian",
    "nl": "dutch",
}
# PostgreSQL keeps positions up to 16383; later words of a long passage share the last position.
MAX_POSITION = 16383
# PostgreSQL refuses a lexeme longer than this many bytes ("word is too long") in a tsvector or a tsquery; such
# a "word" (a pasted hash, a run of one letter) names nothing to search for, so it is left out of both.
MAX_LEXEME_BYTES = 2047
_stemmers = threading.local()  # a PyStemmer object is not safe to share between threads


def base_language(language: str) -> str:
    """ "es-MX" -> "es"."""
    return language.split("-")[0].split("_")[0].lower()


def surface_words(text: str) -> list[tuple[str, str]]:
    """(folded word, lowercase word as written) pairs: "Eléctricas" -> ("electricas", "eléctricas")."""
    folded = tokenize(text)
    written = _TOKEN.findall(_CONTRACTION.sub("", unicodedata.normalize("NFC", text).casefold()))
    return list(zip(folded, written, strict=True)) if len(written) == len(folded) else [(w, w) for w in folded]


def zipf(word: str, languages: Iterable[str]) -> float:
    """The word's everyday frequency (wordfreq's Zipf scale: log10 per billion words), highest of `languages`.

    Pass the word as written: the word lists spell accents ("más", not "mas").
    """
    from wordfreq import zipf_frequency  # loads its word lists on first use (~1 s, ~25 MB for seven languages)

    return max((zipf_frequency(word, language, wordlist="small") for language in languages), default=0.0)


# Each stop word's languages: one look-up per word instead of one per word and language.
_STOPWORD_LANGUAGES: dict[str, tuple[str, ...]] = {}
for _language, _words in STOPWORDS.items():
    for _word in _words:
        _STOPWORD_LANGUAGES[_word] = (*_STOPWORD_LANGUAGES.get(_word, ()), _language)

R = TypeVar("R")


class ShortTextMemo(Generic[R]):
    """`func(text, *args)` kept per process (an lru_cache of `maxsize`) for texts of at most `max_chars`;
    longer texts (whole articles, seen once) are computed every time and never kept. `cache_info` and
    `cache_clear` are the lru_cache's."""

    def __init__(self, func: Callable[..., R], *, max_chars: int, maxsize: int) -> None:
        self.func, self.max_chars = func, max_chars
        self.cached = lru_cache(maxsize=maxsize)(func)
        self.cache_info, self.cache_clear = self.cached.cache_info, self.cached.cache_clear
        wraps(func)(self)

    def __call__(self, text: str, *args: Any) -> R:
        return self.cached(text, *args) if len(text) <= self.max_chars else self.func(text, *args)


def short_text_memo(*, max_chars: int, maxsize: int) -> Callable[[Callable[..., R]], ShortTextMemo[R]]:
    """Decorate a function of a text (and hashable arguments, positional) with `ShortTextMemo`."""
    return lambda func: ShortTextMemo(func, max_chars=max_chars, maxsize=maxsize)


def language_guess(text: str, prefer: str = "") -> str | None:
    """The language of `text` among those with stop-word lists; None when unclear.

    Stop-word hits decide; without any, how common the words are in each language ("¿Venden patinetes?").
    On a tie `prefer` (e.g. the bot's language) wins if it is among the leaders.
    """
    return _language_guess(text, prefer)


# A visitor's message has its guessed language kept: a turn guesses its question's twice (retrieval's terms,
# the reply's language). Articles, longer and guessed once, are not kept.
@short_text_memo(max_chars=2000, maxsize=256)
def _language_guess(text: str, prefer: str) -> str | None:
    hits: dict[str, float] = {}
    for word in tokenize(text):
        for language in _STOPWORD_LANGUAGES.get(word, ()):
            hits[language] = hits.get(language, 0) + 1
    if not hits:
        words = surface_words(text)
        for language in STOPWORDS:
            score = sum(zipf(written, [language]) for _, written in words)
            if score > 0:
                hits[language] = round(score, 2)
    if not hits:
        return None
    best = max(hits.values())
    leaders = [language for language, count in hits.items() if count == best]
    prefer = base_language(prefer) if prefer else ""
    if prefer in leaders:
        return prefer
    return leaders[0] if len(leaders) == 1 else None


def language_detect(text: str, default: str) -> str:
    """The language of `text` (see `language_guess`), `default` when unclear."""
    return language_guess(text, default) or base_language(default)


def is_stopword(word: str, languages: Iterable[str]) -> bool:
    return any(word in STOPWORDS.get(language, ()) for language in languages)


def stem(word: str, language: str) -> str:
    """The Snowball stem of a folded word (the word itself for languages without a stemmer)."""
    algorithm = SNOWBALL.get(language)
    if algorithm is None:
        return word
    cache: dict[str, Stemmer.Stemmer] = _stemmers.__dict__.setdefault("by_language", {})
    stemmer = cache.get(algorithm)
    if stemmer is None:
        stemmer = cache[algorithm] = Stemmer.Stemmer(algorithm)
    result: str = stemmer.stemWord(word)
    return result


def searchable(word: str) -> bool:
    """Whether a folded word can be a lexeme: not over PostgreSQL's longest (stems never get longer)."""
    return len(word) * 4 <= MAX_LEXEME_BYTES or len(word.encode()) <= MAX_LEXEME_BYTES


def lexemes(text: str, language: str, *, start: int = 1) -> list[tuple[str, int]]:
    """(stem, position) of the content words of `text`, positions counting every word from `start`."""
    stopwords = STOPWORDS.get(language, frozenset())
    return [
        (stem(word, language), min(start + offset, MAX_POSITION))
        for offset, word in enumerate(tokenize(text))
        if word not in stopwords and (len(word) > 1 or word.isdigit()) and searchable(word)
    ]


_ABBREVIATION = re.compile(r"(?:^|\s)(?:dr|dra|mr|mrs|ms|st|sr|sra|mme|no|nr|p\.?ej|e\.?g|i\.?e|approx|etc)\.$", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")


def sentences_split(text: str) -> list[str]:
    """The sentences of `text` (line breaks end one too); "Dr. Patel" does not end a sentence."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        elif piece.strip():
            sentences.append(piece.strip())
    return sentences


def tsvector_literal(*, title: str, body: str, language: str) -> str:
    """A `tsvector` literal of the title (weight A) and body (weight B) lexemes, with positions."""
    title_lexemes = lexemes(title, language)
    body_start = len(tokenize(title)) + 2  # a gap, so no phrase runs from the title into the body
    positions: dict[str, list[str]] = {}
    for lexeme, position in title_lexemes:
        positions.setdefault(lexeme, []).append(f"{position}A")
    for lexeme, position in lexemes(body, language, start=body_start):
        positions.setdefault(lexeme, []).append(f"{position}B")
    # Lexemes are runs of letters and digits (tokenize), so quoting them needs no escaping.
    return " ".join(f"'{lexeme}':{','.join(marks)}" for lexeme, marks in positions.items())
