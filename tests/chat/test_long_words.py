"""A word longer than PostgreSQL's longest lexeme (2,047 bytes) in a question or an article is no error."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from chat.models import KnowledgePassage
from chat.services import knowledge_article_create

URL = "/api/v1/chat"
LONG = "x" * 2100  # one word of 2,100 bytes
LONG_CYRILLIC = "ж" * 1100  # 1,100 characters, 2,200 bytes


def post(client, token, body, **extra):
    return client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def test_a_question_holding_an_overlong_word_is_answered(client, tenant):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content="We ship to Canada in 3 days.")

    for word in (LONG, LONG_CYRILLIC):
        direct = post(client, tenant.chat_token, {"message": f"Do you ship to Canada? {word}"})
        through_drf = post(
            client, tenant.chat_token, {"message": f"Do you ship to Canada? {word}"}, HTTP_ACCEPT="application/json;q=1"
        )

        assert (direct.status_code, through_drf.status_code) == (200, 200), direct.content
        assert direct.json()["reply"] == "We ship to Canada in 3 days."
        assert through_drf.json()["reply"] == "We ship to Canada in 3 days."


def test_a_question_of_only_an_overlong_word_is_answered(client, tenant):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content="We ship to Canada in 3 days.")

    response = post(client, tenant.chat_token, {"message": LONG})

    assert response.status_code == 200, response.content


def test_an_article_holding_an_overlong_word_is_saved_and_found(client, tenant):
    with tenant_context(tenant):
        article = knowledge_article_create(
            tenant=tenant, title="Shipping", content=f"We ship to Canada in 3 days. {LONG} {LONG_CYRILLIC}"
        )
        vectors = [
            str(v) for v in KnowledgePassage.objects.filter(article=article).values_list("search_vector", flat=True)
        ]

    assert vectors
    for vector in vectors:
        assert "'ship':" in vector
        assert "xxxx" not in vector
        assert "жжжж" not in vector
    response = post(client, tenant.chat_token, {"message": "Do you ship to Canada?"})
    assert response.status_code == 200
    assert response.json()["reply"].startswith("We ship to Canada in 3 days.")
