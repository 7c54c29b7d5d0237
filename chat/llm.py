"""The LLM client: OpenAI Chat Completions and Embeddings (any compatible provider via OPENAI_BASE_URL).

The only module that knows the protocol, timeouts and retries. The official client retries 429s, 5xx
and timeouts with exponential backoff and jitter (OPENAI_MAX_RETRIES); after that, LLMUnavailable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import structlog
from django.conf import settings

from netia.metrics import EMBEDDING_REQUESTS, LLM_LATENCY, LLM_REQUESTS, LLM_TOKENS

if TYPE_CHECKING:
    import openai

logger = structlog.get_logger(__name__)


class LLMUnavailable(Exception):
    """The LLM could not answer (timeout, rate limit, server error, bad response) after retries."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


def llm_configured() -> bool:
    """True when an API key is configured; otherwise the bot answers offline."""
    return bool(settings.OPENAI_API_KEY)


@cache
def _client(api_key: str, base_url: str | None, timeout: float, max_retries: int) -> openai.OpenAI:
    # Imported on first use: the SDK (~500 modules, ~0.5 s, tens of MB) stays out of the processes of a
    # deployment answering offline, and out of every web worker until its first LLM call.
    import openai

    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


def client() -> openai.OpenAI:
    """A process-wide client for the current settings (the client is thread-safe and pools connections)."""
    # A self-hosted OpenAI-compatible server (embeddings only: chat.embeddings.model()) may want no key: the
    # client insists on one, so a placeholder stands in.
    return _client(
        settings.OPENAI_API_KEY or "no-key",
        settings.OPENAI_BASE_URL,
        settings.OPENAI_TIMEOUT,
        settings.OPENAI_MAX_RETRIES,
    )


def complete(*, messages: list[dict[str, str]], model: str, temperature: float, max_tokens: int) -> Completion:
    """One chat completion; raises LLMUnavailable on any failure after the client's retries."""
    import openai

    started = time.perf_counter()
    try:
        response = client().chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=temperature,
            max_tokens=max_tokens,
        )
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        if not text:
            raise LLMUnavailable("empty completion")
    except (openai.OpenAIError, LLMUnavailable) as exc:
        LLM_REQUESTS.labels(outcome=type(exc).__name__).inc()
        logger.warning("llm_failed", model=model, error=type(exc).__name__, detail=str(exc)[:200])
        raise LLMUnavailable(type(exc).__name__) from exc
    elapsed = time.perf_counter() - started
    usage = response.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage else 0
    LLM_REQUESTS.labels(outcome="ok").inc()
    LLM_LATENCY.observe(elapsed)
    LLM_TOKENS.labels(kind="prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(kind="completion").inc(completion_tokens)
    return Completion(
        text=text,
        model=response.model or model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=round(elapsed * 1000),
    )


def embed(*, texts: list[str], model: str, purpose: str) -> list[list[float]]:
    """One embedding per text, in order; raises LLMUnavailable on any failure after the client's retries."""
    import openai

    try:
        response = client().embeddings.create(model=model, input=texts)
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if len(vectors) != len(texts) or not all(vectors):
            raise LLMUnavailable("incomplete embeddings")
    except (openai.OpenAIError, LLMUnavailable) as exc:
        EMBEDDING_REQUESTS.labels(purpose=purpose, outcome=type(exc).__name__).inc()
        logger.warning(
            "embedding_failed", model=model, purpose=purpose, error=type(exc).__name__, detail=str(exc)[:200]
        )
        raise LLMUnavailable(type(exc).__name__) from exc
    EMBEDDING_REQUESTS.labels(purpose=purpose, outcome="ok").inc()
    return vectors
