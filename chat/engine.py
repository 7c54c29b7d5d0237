"""The conversation engine's decisions: intent, handoff, business hours, and composing the answer.

No writes here: `chat.services.conversation_reply` calls these and records the outcome.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from django.conf import settings
from django.core.cache import cache

from chat import llm
from chat.intents import IntentClassifier, IntentResult, classifier_for, contains_phrase, normalize, tokenize
from chat.models import WEEKDAYS, BotConfiguration, Message
from chat.prompts import HANDOFF_MARKER, chat_messages
from chat.retrieval import RetrievedPassage, passages_search
from netia.tenancy import current_schema

logger = structlog.get_logger(__name__)

LEAD_INTENTS = frozenset({"booking", "contact_request", "pricing"})

NO_MATCH_REPLY = (
    "I'm sorry, I don't have information about that. Would you like to talk to a member of our team? "
    "You can also leave your email or phone number and we'll get back to you."
)
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


def _cache_key(config: BotConfiguration, question: str) -> str:
    digest = hashlib.sha256(normalize(question).encode()).hexdigest()
    return f"chat:answer:{current_schema()}:{config.version}:{config.knowledge_version}:{digest}"


def _extract(passage: RetrievedPassage, question: str) -> str:
    """The passage's sentences sharing words with the question (all of it if none do)."""
    words = {w for w in tokenize(question) if len(w) > 2}
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", passage.content.replace("\n", " ")) if s]
    relevant = [s for s in sentences if words & set(tokenize(s))]
    return " ".join(relevant or sentences)


def offline_answer(*, question: str, passages: list[RetrievedPassage]) -> Answer:
    """Answer without an LLM: quote the best-matching passage, or say honestly that nothing matches."""
    if not passages:
        return Answer(text=NO_MATCH_REPLY, source=Source.NO_MATCH)
    best = passages[0]
    return Answer(text=_extract(best, question), source=Source.OFFLINE, sources=_sources([best]))


def llm_answer(
    *,
    config: BotConfiguration,
    business_name: str,
    question: str,
    history: list[Message],
    passages: list[RetrievedPassage],
    model: str,
) -> Answer:
    """Ask the LLM for a grounded answer; a failure gives the polite fallback, never an exception."""
    messages = chat_messages(
        config=config, business_name=business_name, passages=passages, history=history, question=question
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
        cached = cache.get(key)
        if cached is not None:
            return Answer(text=cached["text"], source=Source.CACHE, sources=cached["sources"], model=cached["model"])
    passages = passages_search(query=question, language=config.language, limit=settings.CHAT_RETRIEVAL_PASSAGES)
    if intent.intent == "greeting" and not passages:
        return Answer(text=config.greeting, source=Source.GREETING)
    if llm.llm_configured():
        answer = llm_answer(
            config=config,
            business_name=business_name,
            question=question,
            history=history,
            passages=passages,
            model=model,
        )
    else:
        answer = offline_answer(question=question, passages=passages)
    if cacheable and answer.source in (Source.LLM, Source.OFFLINE):
        cache.set(
            key,
            {"text": answer.text, "sources": answer.sources, "model": answer.model},
            timeout=settings.CHAT_RESPONSE_CACHE_SECONDS,
        )
    return answer
