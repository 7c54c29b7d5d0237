"""Hybrid retrieval: passages embedded after commit, searched by similarity, re-embedded when the model changes.

The vector path needs pgvector: PostgreSQL servers without it skip those tests (the reason is printed: the
suite runs with `-rs`); the embedded server (no DATABASE_URL) ships pgvector and runs them. `make test-vector`
runs this module on the embedded server with NETIA_REQUIRE_PGVECTOR=1, which turns that skip into a failure;
`.ci/run` runs it beside `make test`, so CI exercises the vector path even though its PostgreSQL lacks pgvector.
"""

from __future__ import annotations

import os

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import tenant_context
from prometheus_client import REGISTRY

from chat import embeddings
from chat.models import KnowledgePassage
from chat.retrieval import knowledge_search
from chat.services import knowledge_article_create, knowledge_article_update

FLAT = [1.0, 0.0, 0.0, 0.0]
OTHER = [0.0, 1.0, 0.0, 0.0]


def _pgvector() -> bool:
    with connection.cursor() as cursor:
        return embeddings.pgvector_available(cursor)


@pytest.fixture
def vectors(db, fake_openai, settings):
    """Embeddings on, through the fake: texts about flats (or punctures) point one way, the rest another."""
    if not _pgvector():
        if os.environ.get("NETIA_REQUIRE_PGVECTOR"):
            pytest.fail("NETIA_REQUIRE_PGVECTOR is set but this PostgreSQL server has no pgvector")
        pytest.skip("pgvector is not installed on this PostgreSQL server: the vector path is NOT tested here")
    settings.OPENAI_EMBEDDING_MODEL = "fake-embedding-a"
    fake_openai.set_embedding(lambda text, dims: FLAT if ("flat" in text.lower() or "puncture" in text) else OTHER)
    return fake_openai


def _embedded(tenant):
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.embedding_model, p.embedding::text FROM chat_knowledgepassage p"
            " JOIN chat_knowledgearticle a ON a.id = p.article_id ORDER BY a.title"
        )
        return cursor.fetchall()


def _create(tenant, title, content):
    with tenant_context(tenant):
        return knowledge_article_create(tenant=tenant, title=title, content=content)


def test_passages_are_embedded_after_commit_outside_the_transaction(
    tenant, vectors, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _create(tenant, "Flat tires", "We fix flat tires in 20 minutes.")
        assert vectors.embedding_inputs() == []  # nothing is sent while the transaction is open

    for callback in callbacks:
        callback()

    assert vectors.embedding_inputs() == [["Flat tires\nWe fix flat tires in 20 minutes."]]
    assert _embedded(tenant) == [("fake-embedding-a", "[1,0,0,0]")]


def test_similarity_finds_what_words_miss_and_both_rankings_are_fused(
    tenant, vectors, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _create(tenant, "Flat tires", "We fix flat tires in 20 minutes.")
        _create(tenant, "Opening hours", "Open every day from 9 to 5.")
        _create(tenant, "Parts", "Spare tubes and tires are in stock.")

    with tenant_context(tenant):
        found = knowledge_search(query="Can you mend a puncture?", language="en", limit=4)
        tires = knowledge_search(query="tires", language="en", limit=4)

    assert [(p.title, p.relevance, p.similarity) for p in found.passages[:1]] == [("Flat tires", 0.0, 1.0)]
    assert found.relevant()[0].title == "Flat tires"  # relevant by similarity, with no word in common
    # Both rankings agree on "Flat tires" (a word and the vector): fused, it beats the word-only match.
    assert [p.title for p in tires.passages[:2]] == ["Flat tires", "Parts"]


def test_a_new_model_is_not_mixed_with_the_old_one_and_the_command_reembeds(
    tenant, vectors, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _create(tenant, "Flat tires", "We fix flat tires in 20 minutes.")
    settings.OPENAI_EMBEDDING_MODEL = "fake-embedding-b"
    with tenant_context(tenant):
        assert embeddings.stale_count() == 1
        assert knowledge_search(query="puncture", language="en", limit=4).passages == []

    call_command("chat_embed_passages", "--schema", tenant.schema_name)

    assert _embedded(tenant) == [("fake-embedding-b", "[1,0,0,0]")]
    with tenant_context(tenant):
        assert embeddings.stale_count() == 0
        assert [p.title for p in knowledge_search(query="puncture", language="en", limit=4).passages] == ["Flat tires"]


def test_an_edited_article_is_re_embedded(tenant, vectors, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        article = _create(tenant, "Repairs", "We fix brakes.")
    assert _embedded(tenant) == [("fake-embedding-a", "[0,1,0,0]")]

    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        knowledge_article_update(article=article, content="We fix flat tires.")

    assert _embedded(tenant) == [("fake-embedding-a", "[1,0,0,0]")]


def test_an_embeddings_outage_degrades_to_full_text_search(tenant, vectors, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _create(tenant, "Flat tires", "We fix flat tires in 20 minutes.")
    before = REGISTRY.get_sample_value(
        "netia_embedding_requests_total", {"purpose": "question", "outcome": "InternalServerError"}
    )
    vectors.fail_embeddings_with(500)

    with tenant_context(tenant):
        found = knowledge_search(query="flat tire price", language="en", limit=4)

    assert [(p.title, p.similarity) for p in found.passages] == [("Flat tires", None)]
    after = REGISTRY.get_sample_value(
        "netia_embedding_requests_total", {"purpose": "question", "outcome": "InternalServerError"}
    )
    assert after == (before or 0) + 1


def test_without_pgvector_the_migration_left_no_column_and_retrieval_is_full_text(tenant, fake_openai, settings):
    if _pgvector():
        pytest.skip("this PostgreSQL server has pgvector: the path without it is tested on servers that lack it")
    settings.OPENAI_EMBEDDING_MODEL = "fake-embedding-a"
    article = _create(tenant, "Flat tires", "We fix flat tires in 20 minutes.")

    with tenant_context(tenant):
        assert embeddings.vector_column_ready() is False
        assert embeddings.passages_embed() == 0
        found = knowledge_search(query="flat tires", language="en", limit=4)
    assert [p.title for p in found.passages] == [article.title]
    assert fake_openai.embedding_inputs() == []
    with pytest.raises(CommandError, match="pgvector is not available"):
        call_command("chat_embed_passages", "--schema", tenant.schema_name)


def test_the_command_refuses_without_an_embeddings_model(settings):
    settings.OPENAI_EMBEDDING_MODEL = ""

    with pytest.raises(CommandError, match="OPENAI_EMBEDDING_MODEL"):
        call_command("chat_embed_passages")


def test_passages_keep_their_rows_when_embeddings_are_off(tenant):
    _create(tenant, "Flat tires", "We fix flat tires in 20 minutes.")

    with tenant_context(tenant):
        assert list(KnowledgePassage.objects.values_list("embedding_model", flat=True)) == [""]


def _offline(question):
    from chat import engine

    retrieval = knowledge_search(query=question, language="en", limit=4)
    return engine.offline_answer(passages=retrieval.relevant(), terms=retrieval.terms, language="en", question=question)


def test_a_sentence_close_in_meaning_makes_the_passage_relevant_and_is_quoted(
    tenant, vectors, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _create(
            tenant, "Workshop", "We service gears and brakes. Chains cost $20. Flat tires are mended while you wait."
        )
        _create(tenant, "Opening hours", "Open every day from 9 to 5.")

    with tenant_context(tenant):
        found = knowledge_search(query="Can I get a puncture sorted?", language="en", limit=4)
        answer = _offline("Can I get a puncture sorted?")

    workshop = found.passages[0]
    assert (workshop.title, workshop.relevance) == ("Workshop", 0.0)  # no word of the question in it
    assert workshop.sentence_similarities == pytest.approx((0.0, 0.0, 1.0))
    assert "Flat tires are mended while you wait." in answer.text


def test_sentences_are_embedded_once_in_one_request(tenant, vectors, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _create(tenant, "Workshop", "We service gears and brakes. Flat tires are mended while you wait.")
    vectors.clear_requests()

    with tenant_context(tenant):
        _offline("Can I get a puncture sorted?")
        _offline("Is a puncture repaired the same day?")

    sentence_requests = [
        texts for texts in vectors.embedding_inputs() if "Flat tires are mended while you wait." in texts
    ]
    assert sentence_requests == [["We service gears and brakes.", "Flat tires are mended while you wait."]]


def test_a_failed_sentence_request_falls_back_to_words_and_is_counted(
    tenant, vectors, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _create(tenant, "Flat tires", "Flat tires are mended while you wait. A flat repair is $15.")
    labels = {"purpose": "sentence", "outcome": "InternalServerError"}
    before = REGISTRY.get_sample_value("netia_embedding_requests_total", labels) or 0
    with tenant_context(tenant):
        embeddings.question_embedding("flat repair price")  # cached: the next request is the sentences'
        vectors.fail_embeddings_with(500)

        found = knowledge_search(query="flat repair price", language="en", limit=4)
        answer = _offline("flat repair price")

    assert found.passages[0].sentence_similarities is None  # judged on words alone
    assert found.relevant()[0].title == "Flat tires"
    assert "$15" in answer.text
    assert REGISTRY.get_sample_value("netia_embedding_requests_total", labels) == before + 1
