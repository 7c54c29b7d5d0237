"""The numpy MiniLM encoder computes what sentence-transformers computes, and the fake serves it over HTTP.

The reference vectors (data/minilm_reference.json) were computed once with sentence-transformers and torch
in a throwaway venv from the same weights; neither is a dependency of the project. Without the model files
(`make minilm`) these tests skip, loudly; `make test-vector` sets NETIA_REQUIRE_MINILM, which makes that a
failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fakes import minilm

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def model():
    if not minilm.available():
        if os.environ.get("NETIA_REQUIRE_MINILM"):
            pytest.fail(f"NETIA_REQUIRE_MINILM is set but {minilm.MODEL_DIR} has no model: run `make minilm`")
        pytest.skip(f"MiniLM files not in {minilm.MODEL_DIR} (`make minilm`): the real-embeddings path is NOT tested")
    return minilm.model()


def _cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)


def test_vectors_match_sentence_transformers(model):
    reference = json.loads(REFERENCE.read_text())

    vectors = model.encode(reference["texts"])

    assert vectors.shape == (len(reference["texts"]), 384)
    similarities = [_cosine(list(v), r) for v, r in zip(vectors, reference["embeddings"], strict=True)]
    assert min(similarities) > 0.999, similarities


def test_a_batch_gives_each_text_the_vector_it_gets_alone(model):
    texts = ["short", "a much longer sentence that pads the short one in the same batch"]

    together = model.encode(texts)
    alone = [model.encode([text])[0] for text in texts]

    assert [_cosine(list(a), list(b)) for a, b in zip(together, alone, strict=True)] == pytest.approx([1.0, 1.0])


def test_the_fake_serves_it_through_the_openai_client_and_similar_meanings_are_near(model, fake_openai, settings):
    from chat import llm

    fake_openai.set_embedding(batch=minilm.minilm_embeddings)
    texts = ["Can I get a puncture fixed?", "We repair flat tires while you wait.", "The bakery opens at seven."]

    question, repair, bakery = llm.embed(texts=texts, model=minilm.MODEL_NAME, purpose="test")

    assert len(question) == 384
    assert _cosine(question, repair) > _cosine(question, bakery) + 0.2
    assert fake_openai.embedding_inputs() == [texts]  # one request for the batch


def test_the_fakes_vector_cache_serves_what_the_model_computes_and_recomputes_a_cut_short_file(model, tmp_path):
    texts = ["Do you ship to Canada?", "We ship worldwide within a week.", "Do you ship to Canada?"]
    fresh = model.encode(texts)

    first = minilm.cached_encode(texts, tmp_path)
    files = sorted(tmp_path.iterdir())
    files[0].write_bytes(files[0].read_bytes()[:100])  # a run that died mid-write
    second = minilm.cached_encode(texts, tmp_path)

    assert len(files) == 2  # one file per distinct text
    assert [_cosine(list(a), list(b)) for a, b in zip(first, fresh, strict=True)] == pytest.approx([1.0] * 3)
    assert [_cosine(list(a), list(b)) for a, b in zip(second, fresh, strict=True)] == pytest.approx([1.0] * 3)
    assert sorted(f.stat().st_size for f in tmp_path.iterdir()) == [384 * 4, 384 * 4]
