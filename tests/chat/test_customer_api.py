"""The tenant's REST API: knowledge, bot configuration, conversations and leads, scoped by API key."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from billing.models import Plan
from chat.models import BotConfiguration, KnowledgeArticle, Lead
from chat.replies import conversation_reply
from chat.retrieval import passages_search
from chat.services import conversation_get_or_create, message_record_visitor
from tenants.audit import SYSTEM
from tenants.services import api_key_create, api_key_revoke


@pytest.fixture
def api(client, tenant):
    _, secret = api_key_create(tenant=tenant, name="dev", actor=SYSTEM)

    def call(method, path, body=None, key=secret):
        kwargs = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        if body is not None:
            kwargs.update(data=body, content_type="application/json")
        return getattr(client, method)(f"/api/v1/customer/{path}", **kwargs)

    return call


def test_knowledge_crud_indexes_and_is_searchable(api, tenant):
    created = api("post", "knowledge", {"title": "Returns", "content": "Returns are accepted within 30 days."})
    article_id = created.json()["id"]
    updated = api("patch", f"knowledge/{article_id}", {"content": "Returns are accepted within 14 days."})
    listed = api("get", "knowledge")

    assert created.status_code == 201
    assert updated.json()["content"] == "Returns are accepted within 14 days."
    assert listed.json()["count"] == 1
    assert [a["title"] for a in listed.json()["results"]] == ["Returns"]
    with tenant_context(tenant):
        assert [p.content for p in passages_search(query="returns days", language="en", limit=2)] == [
            "Returns are accepted within 14 days."
        ]

    assert api("delete", f"knowledge/{article_id}").status_code == 204
    assert api("get", f"knowledge/{article_id}").status_code == 404
    with tenant_context(tenant):
        assert KnowledgeArticle.objects.count() == 0


def test_invalid_article_is_400_and_stores_nothing(api, tenant):
    response = api("post", "knowledge", {"title": "", "content": "x"})

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == ["title"]
    with tenant_context(tenant):
        assert KnowledgeArticle.objects.count() == 0


def test_bot_configuration_read_and_partial_update(api, tenant):
    before = api("get", "bot").json()
    response = api("patch", "bot", {"bot_name": "Ada", "business_hours": {"sat": [["09:00", "13:00"]]}})
    invalid = api("patch", "bot", {"timezone": "Mars/Base"})

    assert response.status_code == 200
    assert (response.json()["bot_name"], response.json()["version"]) == ("Ada", before["version"] + 1)
    assert invalid.status_code == 400
    assert list(invalid.json()["error"]["details"]["fields"]) == ["timezone"]
    with tenant_context(tenant):
        config = BotConfiguration.objects.get()
        assert (config.bot_name, config.timezone, config.business_hours) == (
            "Ada",
            "UTC",
            {"sat": [["09:00", "13:00"]]},
        )


def test_conversations_and_leads(api, tenant):
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="api", session_id="s")
        message_record_visitor(conversation=conversation, content="Book a table, ana@example.com")
        conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=False)
        lead = Lead.objects.get()

    listed = api("get", "conversations?status=bot").json()
    detail = api("get", f"conversations/{conversation.public_id}").json()
    leads = api("get", "leads").json()
    updated = api("patch", f"leads/{lead.pk}", {"status": "won", "notes": "Booked for Friday"}).json()
    bad = api("patch", f"leads/{lead.pk}", {"status": "maybe"})

    assert [c["id"] for c in listed["results"]] == [str(conversation.public_id)]
    assert [m["role"] for m in detail["messages"]] == ["visitor", "bot"]
    assert [(item["email"], item["intent"]) for item in leads["results"]] == [("ana@example.com", "booking")]
    assert (updated["status"], updated["notes"]) == ("won", "Booked for Friday")
    assert bad.status_code == 400
    with tenant_context(tenant):
        assert Lead.objects.get().status == "won"


def test_keys_only_see_their_own_tenant(api, tenant, other_tenant):
    with tenant_context(other_tenant):
        KnowledgeArticle.objects.create(title="Globex secret", content="hidden")
    _, other_key = api_key_create(tenant=other_tenant, name="other", actor=SYSTEM)

    mine = api("get", "knowledge").json()
    theirs = api("get", "knowledge", key=other_key).json()

    assert mine["count"] == 0
    assert [a["title"] for a in theirs["results"]] == ["Globex secret"]


def test_missing_permission_is_403_and_changes_nothing(api, tenant):
    _, read_only = api_key_create(tenant=tenant, name="ro", permissions=["knowledge:read"], actor=SYSTEM)

    response = api("post", "knowledge", {"title": "T", "content": "C"}, key=read_only)

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "This API key lacks the permission.",
        "details": {"required": "knowledge:write"},
    }
    with tenant_context(tenant):
        assert KnowledgeArticle.objects.count() == 0


@pytest.mark.parametrize("key", ["", "nk_0123456789ab_wrongwrongwrongwrongwrong", "revoked"])
def test_missing_wrong_or_revoked_keys_are_401(api, tenant, key):
    if key == "revoked":
        api_key, key = api_key_create(tenant=tenant, name="old", actor=SYSTEM)
        api_key_revoke(api_key=api_key, actor=SYSTEM)

    response = api("get", "knowledge", key=key)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_knowledge_beyond_the_plans_quota_is_402_and_stores_nothing(api, tenant):
    Plan.objects.filter(is_default=True).update(knowledge_articles_max=1)

    first = api("post", "knowledge", {"title": "One", "content": "First article."})
    second = api("post", "knowledge", {"title": "Two", "content": "Second article."})

    assert first.status_code == 201
    assert second.status_code == 402
    assert second.json()["error"]["code"] == "plan_limit_reached"
    assert second.json()["error"]["details"] == {"resource": "knowledge_articles", "limit": 1, "plan": "trial"}
    with tenant_context(tenant):
        assert list(KnowledgeArticle.objects.values_list("title", flat=True)) == ["One"]
