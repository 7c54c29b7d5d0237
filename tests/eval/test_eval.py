"""The evaluation set's figures may not regress (the full report: `make eval`).

Measured through the engine (same retrieval, threshold and answers as the chat API, no conversation
stored), offline and with the LLM through the recording fake OpenAI server. FLOORS are the figures measured
when they were set, rounded down: raise them when answers get better, never lower them to pass.
"""

from __future__ import annotations

import pytest

from tests.eval.dataset import businesses_load
from tests.eval.runner import business_evaluate, overall, report, tenant_prepare

FLOORS = {
    "recall_at_1": 0.90,
    "recall_at_4": 0.96,
    "offline_fact": 0.79,
    "honest": 0.90,
    "llm_passage": 0.81,
    "llm_honest": 0.88,
}


@pytest.fixture
def results(tenant, fake_openai, settings):
    tenant_prepare(tenant)
    settings.CHAT_RESPONSE_CACHE_SECONDS = 0
    return [business_evaluate(tenant, business, llm=fake_openai, via="engine") for business in businesses_load()]


def test_answer_quality_does_not_regress(results):
    scores = overall(results)

    below = {name: getattr(scores, name) for name, floor in FLOORS.items() if getattr(scores, name) < floor}
    assert not below, f"answer quality regressed: {below}\n{report(results)}"
    assert (scores.answerable, scores.unanswerable) == (140, 50)
