"""The conversation engine's decisions: intent, handoff, business hours, and composing the answer.

No writes here: `chat.services.conversation_reply` calls these and records the outcome.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from django.conf import settings
from django.core.cache import cache

from chat import embeddings, llm
from chat.intents import IntentClassifier, IntentResult, classifier_for, contains_phrase, normalize
from chat.lexical import Term
from chat.models import WEEKDAYS, BotConfiguration, Message
from chat.prompts import HANDOFF_MARKER, chat_messages
from chat.retrieval import RetrievedPassage, knowledge_search
from chat.stopwords import LOCATION_QUESTIONS, NUMBER_QUESTIONS, PRICE_QUESTIONS
from chat.text import base_language, language_detect, lexemes, sentences_split, short_text_memo
from netia.tenancy import current_schema
from netia.versioned_cache import Prefetched

logger = structlog.get_logger(__name__)

LEAD_INTENTS = frozenset({"booking", "contact_request", "pricing"})

NO_MATCH_REPLY = (
    "I'm sorry, I don't have information about that. Would you like to talk to a member of our team? "
    "You can also leave your email or phone number and we'll get back to you."
)
# The offline responder's honest "I don't know", in the visitor's language when the bot follows it.
NO_MATCH_REPLIES = {
    "en": NO_MATCH_REPLY,
    "es": "Lo siento, no tengo información sobre eso. ¿Quiere hablar con una persona de nuestro equipo? "
    "También puede dejarnos su email o teléfono y le contactaremos.",
    "fr": "Désolé, je n'ai pas d'information à ce sujet. Voulez-vous parler à un membre de notre équipe ? "
    "Vous pouvez aussi laisser votre e-mail ou votre numéro de téléphone et nous vous recontacterons.",
    "de": "Dazu habe ich leider keine Informationen. Möchten Sie mit jemandem aus unserem Team sprechen? "
    "Sie können auch Ihre E-Mail-Adresse oder Telefonnummer hinterlassen, wir melden uns.",
    "pt": "Desculpe, não tenho informações sobre isso. Quer falar com alguém da nossa equipa? "
    "Também pode deixar o seu email ou telefone e entraremos em contacto.",
    "it": "Mi dispiace, non ho informazioni su questo. Vuole parlare con una persona del nostro team? "
    "Può anche lasciare la sua email o il suo numero di telefono e la ricontatteremo.",
    "nl": "Sorry, daar heb ik geen informatie over. Wilt u met iemand van ons team praten? "
    "U kunt ook uw e-mailadres of telefoonnummer achterlaten, dan nemen wij contact op.",
}
_DIGIT = re.compile(r"\d")
_AMOUNT = re.compile(r"[$€£¥]\s?\d|\d\s?(?:[$€£¥]|dollars?|euros?|eur\b|usd\b|dólares|cents?)", re.IGNORECASE)
# What a price question may be answered with besides an amount: that it costs nothing or is included.
_NO_CHARGE = re.compile(
    r"\b(?:free|no cost|no charge|included|gratis|gratuit[aoe]?s?|sin coste|incluid[oa]s?|inclus[e]?|kostenlos"
    r"|inklusive|incluíd[oa]s?|gratuit[oa]|compres[oa]|inbegrepen)\b",
    re.IGNORECASE,
)
# A house number beside a capitalised street name ("2140 Coral Way", "4521 boulevard Saint-Laurent",
# "Rua da Boavista 71"), not a time ("Sunday 10 am", "Friday 8:00").
_ADDRESS = re.compile(
    r"\b\d{1,5}[a-z]?,?\s+(?:[a-zà-ÿ]{3,}\s+)?[A-ZÀ-Þ][\w'-]"
    r"|[A-ZÀ-Þ][\w'-]+\s+\d{1,5}\b(?![:.]\d|\s*(?:am|pm|h)\b)"
)
SOURCE_LABELS = {"en": "Source", "es": "Fuente", "fr": "Source", "de": "Quelle", "pt": "Fonte", "it": "Fonte"}
FALLBACK_REPLY = (
    "Sorry, I can't answer right now. Please try again in a moment, or leave your email or phone number "
    "and our team will get back to you."
)


class Source:
    """How an answer was made (also the `source` label of the replies metric)."""

    LLM = "llm"
    OFFLINE = "offline"
    CACHE = "cache"
    GREETING = "greeting"
    NO_MATCH = "no_match"
    FALLBACK = "fallback"
    HANDOFF = "handoff"
    AWAY = "away"
    PAUSED = "paused"


# Answers that count as AI replies for usage metering (an answer served from the cache costs no AI reply).
METERED_SOURCES = frozenset({Source.LLM, Source.OFFLINE})


@dataclass(frozen=True)
class Answer:
    text: str
    source: str
    sources: list[dict[str, object]] = field(default_factory=list)
    handoff_reason: str = ""
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int | None = None


def classifier(config: BotConfiguration) -> IntentClassifier:
    """The tenant's compiled classifier, rebuilt only when its configuration version changes."""
    return classifier_for((current_schema(), config.version), config.intent_keywords or None)


def handoff_reason_for(*, config: BotConfiguration, text: str, intent: IntentResult) -> str:
    """Why this turn must go to a human, or "" when the bot may answer."""
    if intent.intent == "human_handoff":
        return "visitor_asked_for_human"
    if intent.intent == "complaint":
        return "complaint"
    if config.handoff_keywords and contains_phrase(text, config.handoff_keywords):
        return "handoff_keyword"
    return ""


def is_open(*, config: BotConfiguration, now: datetime) -> bool:
    """Whether `now` falls in the business hours (no hours configured: always open)."""
    hours = config.business_hours or {}
    if not hours:
        return True
    try:
        local = now.astimezone(ZoneInfo(config.timezone))
    except ZoneInfoNotFoundError:
        local = now
    today = hours.get(WEEKDAYS[local.weekday()]) or []
    current = local.time()
    return any(time.fromisoformat(start) <= current < time.fromisoformat(end) for start, end in today)


def _sources(passages: list[RetrievedPassage]) -> list[dict[str, object]]:
    seen: dict[int, dict[str, object]] = {}
    for passage in passages:
        seen.setdefault(passage.article_id, {"id": passage.article_id, "title": passage.title})
    return list(seen.values())


@lru_cache(maxsize=256)
def _question_digest(question: str) -> str:
    """The answer cache key's question part: a first turn needs it twice (`answer_cache_key_guess`, `_cache_key`)."""
    return hashlib.sha256(normalize(question).encode()).hexdigest()


def _cache_key(config: BotConfiguration, question: str) -> str:
    digest = _question_digest(question)
    # Offline and LLM answers differ: switching the LLM on or off must not serve the other kind from cache.
    # So must turning embeddings on or off (they choose passages and quoted sentences).
    mode = f"{'llm' if llm.llm_configured() else 'offline'}:{embeddings.model()}"
    schema = current_schema()
    prefix = f"chat:answer:{schema}:{config.version}:{config.knowledge_version}:{mode}:"
    if len(_KEY_PREFIXES) >= 1024 and schema not in _KEY_PREFIXES:
        _KEY_PREFIXES.clear()
    _KEY_PREFIXES[schema] = prefix
    return prefix + digest


# The answer cache's key prefix (versions and mode) this process last used, per schema: `answer_cache_key_guess`.
_KEY_PREFIXES: dict[str, str] = {}


def answer_cache_key_guess(*, schema: str, question: str) -> str | None:
    """The answer cache key a first `question` most likely has in the tenant `schema` (this process's last
    versions and mode), for a caller to read with its own round trip and pass as `prefetched`; None when this
    process has not answered there yet. The turn uses the read only if the key turns out to be the one."""
    prefix = _KEY_PREFIXES.get(schema)
    return None if prefix is None else prefix + _question_digest(question)


def with_citation(*, text: str, sources: list[dict[str, object]], language: str) -> str:
    """The reply followed by the titles of the articles it came from (channels whose tenant enables it)."""
    titles = "; ".join(str(source["title"]) for source in sources)
    return f"{text}\n\n{SOURCE_LABELS.get(language, 'Source')}: {titles}" if titles else text


def reply_language(*, config: BotConfiguration, text: str) -> str:
    """The language to answer in: the visitor's (when the bot follows it and it is recognisable), else the bot's."""
    if config.reply_language == BotConfiguration.ReplyLanguage.AUTO:
        return language_detect(text, config.language)
    return base_language(config.language)


def answer_sentences(*, passage: RetrievedPassage, terms: list[Term], question: str) -> str:
    """The passage's sentence that answers the question best, and at most one more.

    With embeddings (`passage.sentence_similarities` measured by retrieval), the sentence closest in meaning
    to the question is quoted too when it is another one (at most three sentences then), so a paraphrase
    sharing no word with its answer still gets it.

    Sentences are scored by the weight of the question's terms they hold, plus a bonus for holding what the
    question asks for: an amount ("how much"), an address ("where", "adresse"), a figure ("cuándo"...).
    The second sentence is the article's lead when the question names the article's topic (its title) or
    asks where and the lead holds an address, else one holding terms the first lacks. A passage matched on
    its title only, with nothing asked for in it, is quoted from its start.
    """
    sentences, sentence_lexemes, title_lexemes = _passage_analysis(passage.content, passage.title, passage.language)
    if not sentences:
        return passage.content
    chosen = _sentences_by_words(
        sentences, sentence_lexemes, title_lexemes, position=passage.position, terms=terms, question=question
    )
    similarities = passage.sentence_similarities
    if similarities is not None and len(similarities) == len(sentences):
        closest = max(range(len(sentences)), key=lambda i: (similarities[i], -i))
        if closest not in chosen:
            chosen = [*chosen, closest]
    return " ".join(sentences[i] for i in sorted(chosen))


# Passages up to 4,000 characters (retrieval's are about 700) have their analysis kept, 512 at most.
@short_text_memo(max_chars=4000, maxsize=512)
def _passage_analysis(
    content: str, title: str, language: str
) -> tuple[tuple[str, ...], tuple[frozenset[str], ...], frozenset[str]]:
    """A passage's sentences, the lexemes of each and those of its title: the same few passages answer most
    questions, so this process analyses each (text, language) once."""
    sentences = tuple(sentences_split(content))
    return (
        sentences,
        tuple(frozenset(lexeme for lexeme, _ in lexemes(sentence, language)) for sentence in sentences),
        frozenset(lexeme for lexeme, _ in lexemes(title, language)),
    )


def _sentences_by_words(
    sentences: tuple[str, ...],
    sentence_lexemes: tuple[frozenset[str], ...],
    title: frozenset[str],
    *,
    position: int,
    terms: list[Term],
    question: str,
) -> list[int]:
    """The indexes of the sentences `answer_sentences` quotes by the question's words, the best first."""
    matched = [{i for i, term in enumerate(terms) if term.lexemes & found} for found in sentence_lexemes]

    def weight(indexes: set[int]) -> float:
        return sum(terms[i].weight for i in indexes)

    location = bool(contains_phrase(question, LOCATION_QUESTIONS))
    figure_bonus = 0.5 * weight(set(range(len(terms)))) if contains_phrase(question, NUMBER_QUESTIONS) else 0.0
    figure = _ADDRESS if location else _AMOUNT if contains_phrase(question, PRICE_QUESTIONS) else _DIGIT
    has_figure = [bool(figure_bonus and figure.search(sentence)) for sentence in sentences]
    best = max(range(len(sentences)), key=lambda i: (weight(matched[i]) + figure_bonus * has_figure[i], -i))
    if not matched[best] and not has_figure[best]:
        return [0, 1][: len(sentences)]
    chosen = [best]
    missing = set(range(len(terms))) - matched[best]
    extra = max(range(len(sentences)), key=lambda i: (weight(matched[i] & missing), -i))
    names_title = any(term.lexemes & title for term in terms)
    # "Where is the studio?": the article's lead states the address; the best sentence may be a detail.
    if best != 0 and position == 0 and (names_title or (location and has_figure[0])):
        chosen.append(0)
    elif extra != best and matched[extra] & missing:
        chosen.append(extra)
    return chosen


def offline_answer(*, passages: list[RetrievedPassage], terms: list[Term], language: str, question: str) -> Answer:
    """Answer without an LLM: quote the best passage's answering sentences, or say honestly that nothing matches."""
    if not passages:
        return Answer(text=NO_MATCH_REPLIES.get(language, NO_MATCH_REPLY), source=Source.NO_MATCH)
    if contains_phrase(question, PRICE_QUESTIONS):
        # A price question is answered by a passage that states a price (or that there is none to pay):
        # "Dr. Reyes does root canals" does not say what one costs.
        passages = [p for p in passages if _AMOUNT.search(p.content) or _NO_CHARGE.search(p.content)]
        if not passages:
            return Answer(text=NO_MATCH_REPLIES.get(language, NO_MATCH_REPLY), source=Source.NO_MATCH)
    best = passages[0]
    text = answer_sentences(passage=best, terms=terms, question=question)
    return Answer(text=text, source=Source.OFFLINE, sources=_sources([best]))


def llm_answer(
    *,
    config: BotConfiguration,
    business_name: str,
    question: str,
    history: list[Message],
    passages: list[RetrievedPassage],
    model: str,
    language: str,
) -> Answer:
    """Ask the LLM for a grounded answer; a failure gives the polite fallback, never an exception."""
    messages = chat_messages(
        config=config,
        business_name=business_name,
        passages=passages,
        history=history,
        question=question,
        language=language,
    )
    try:
        completion = llm.complete(
            messages=messages,
            model=model,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
        )
    except llm.LLMUnavailable:
        return Answer(text=FALLBACK_REPLY, source=Source.FALLBACK)
    cannot_answer = HANDOFF_MARKER in completion.text
    return Answer(
        text=config.handoff_message if cannot_answer else completion.text,
        source=Source.HANDOFF if cannot_answer else Source.LLM,
        sources=[] if cannot_answer else _sources(passages),
        handoff_reason="bot_cannot_answer" if cannot_answer else "",
        model=completion.model,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        latency_ms=completion.latency_ms,
    )


def compose_answer(
    *,
    config: BotConfiguration,
    business_name: str,
    question: str,
    intent: IntentResult,
    history: list[Message],
    model: str,
) -> Answer:
    """The bot's answer to an in-hours turn that needs no handoff: cache, then LLM or offline responder.

    The cache is read before retrieval: only LLM and offline answers are cached, and for the same question
    and versions retrieval would find the same passages.
    """
    # Only first questions are cached: later ones depend on the conversation so far.
    cacheable = not history
    key = _cache_key(config, question) if cacheable else ""
    if cacheable:
        cached = _cached_answer(key)
        if cached is not None:
            return cached
    return _composed_answer(
        config=config,
        business_name=business_name,
        question=question,
        intent=intent,
        history=history,
        model=model,
        cache_key=key,
    )


def _cached_answer(key: str, prefetched: Prefetched | None = None) -> Answer | None:
    cached = prefetched.found.get(key) if prefetched is not None and key in prefetched.keys else cache.get(key)
    if cached is None:
        return None
    return Answer(text=cached["text"], source=Source.CACHE, sources=cached["sources"], model=cached["model"])


def local_answer(
    *, config: BotConfiguration, question: str, intent: IntentResult, prefetched: Prefetched | None = None
) -> Answer | None:
    """compose_answer for a first question, when it needs no network call: from the cache, or from the offline
    responder when no LLM is configured; None when only the LLM can answer (the caller then asks it with no
    transaction open). `prefetched`: the cache entry read by the caller (`answer_cache_key_guess`), if any."""
    key = _cache_key(config, question)
    cached = _cached_answer(key, prefetched)
    if cached is not None or llm.llm_configured():
        return cached
    return _composed_answer(
        config=config, business_name="", question=question, intent=intent, history=[], model="", cache_key=key
    )


def _composed_answer(
    *,
    config: BotConfiguration,
    business_name: str,
    question: str,
    intent: IntentResult,
    history: list[Message],
    model: str,
    cache_key: str,
) -> Answer:
    """The answer after the cache missed: retrieval, then the LLM or the offline responder (stored in the
    cache under `cache_key` unless it is "")."""
    retrieval = knowledge_search(query=question, language=config.language, limit=settings.CHAT_RETRIEVAL_PASSAGES)
    # Below the relevance threshold the bot gets no passages: it says it does not know (offline) or hands off.
    passages = retrieval.relevant()
    if intent.intent == "greeting" and not passages:
        return Answer(text=config.greeting, source=Source.GREETING)
    language = reply_language(config=config, text=question)
    if llm.llm_configured():
        answer = llm_answer(
            config=config,
            business_name=business_name,
            question=question,
            history=history,
            passages=passages,
            model=model,
            language=language,
        )
    else:
        answer = offline_answer(passages=passages, terms=retrieval.terms, language=language, question=question)
    if cache_key and answer.source in (Source.LLM, Source.OFFLINE):
        cache.set(
            cache_key,
            {"text": answer.text, "sources": answer.sources, "model": answer.model},
            timeout=settings.CHAT_RESPONSE_CACHE_SECONDS,
        )
    return answer
