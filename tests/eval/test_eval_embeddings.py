"""With real sentence embeddings the evaluation's figures may not regress (`make eval-embeddings` for all).

all-MiniLM-L6-v2 (tests/fakes/minilm.py) served by the fake OpenAI server, on a PostgreSQL with pgvector:
`make test-vector` runs this on the embedded server with NETIA_REQUIRE_PGVECTOR and NETIA_REQUIRE_MINILM set,
which turn the skips below into failures. Offline responder only, through the engine (the LLM path's
figures come from the same retrieval and are guarded lexically by test_eval.py). FLOORS are the figures
measured when they were set, rounded down: raise them when answers get better, never lower them to pass.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from chat.embeddings import pgvector_available
from tests.eval.dataset import businesses_load
from tests.eval.runner import business_evaluate, embeddings_settings, overall, report, tenant_prepare
from tests.fakes import minilm

FLOORS = {"recall_at_1": 0.96, "recall_at_4": 0.99, "offline_fact": 0.90, "honest": 0.92}
# The held-out businesses (split "test", never looked at while tuning) must keep their gain too.
HELD_OUT_FLOORS = {"offline_fact": 0.89, "honest": 1.0}


@pytest.fixture
def results(tenant, fake_openai, settings):
    with connection.cursor() as cursor:
        if not pgvector_available(cursor):
            if os.environ.get("NETIA_REQUIRE_PGVECTOR"):
                pytest.fail("NETIA_REQUIRE_PGVECTOR is set but this PostgreSQL server has no pgvector")
            pytest.skip("pgvector is not installed on this PostgreSQL server: the embeddings figures are NOT checked")
    if not minilm.available():
        if os.environ.get("NETIA_REQUIRE_MINILM"):
            pytest.fail(f"NETIA_REQUIRE_MINILM is set but {minilm.MODEL_DIR} has no model: run `make minilm`")
        pytest.skip(f"MiniLM files not in {minilm.MODEL_DIR} (`make minilm`): the embeddings figures are NOT checked")
    tenant_prepare(tenant)
    settings.CHAT_RESPONSE_CACHE_SECONDS = 0
    with embeddings_settings(fake_openai, "minilm"):
        return [business_evaluate(tenant, business, via="engine") for business in businesses_load()]


def test_answer_quality_with_embeddings_does_not_regress(results):
    scores = overall(results)
    held_out = overall([r for r in results if r.business.split == "test"])

    below = {name: getattr(scores, name) for name, floor in FLOORS.items() if getattr(scores, name) < floor}
    below |= {
        f"held-out {name}": getattr(held_out, name)
        for name, floor in HELD_OUT_FLOORS.items()
        if getattr(held_out, name) < floor
    }
    assert not below, f"answer quality with embeddings regressed: {below}\n{report(results)}"
    assert (scores.answerable, scores.unanswerable) == (140, 50)
