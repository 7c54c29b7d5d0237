"""Suspending a tenant through the admin API pauses its bot on every channel at once; resuming restores it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from chat.services import knowledge_article_create
from tests.fakes.papercups_server import FakePapercups
from tests.webhooks.conftest import SHIPPING


def _chat(client, tenant, session: str = "s1"):
    return client.post(
        "/api/v1/chat",
        {"session_id": session, "message": "Do you ship to Canada?"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.chat_token}"},
    )


@pytest.fixture
def papercups() -> Iterator[FakePapercups]:
    with FakePapercups() as fake:
        yield fake


@pytest.fixture
def acme(tenant):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    return tenant


def test_a_suspended_tenants_chat_api_answers_402_tenant_suspended_until_resumed(api, client, acme):
    api.post(f"tenants/{acme.pk}/suspend")

    refused = _chat(client, acme)
    with tenant_context(acme):
        stored = Message.objects.count()
    api.post(f"tenants/{acme.pk}/resume")
    answered = _chat(client, acme)

    assert refused.status_code == 402
    assert refused.json()["error"]["details"] == {"reason": "tenant_suspended"}
    assert stored == 0
    assert (answered.status_code, answered.json()["reply"]) == (200, SHIPPING)


def test_a_suspended_tenants_papercups_visitor_gets_no_bot_reply(
    api, client, acme, papercups: FakePapercups, django_capture_on_commit_callbacks
):
    account = papercups.add_account(str(acme.papercups_account_id), bot_email="bot@acme.test")
    acme.papercups_api_key, acme.papercups_base_url, acme.papercups_bot_user_id = (
        account.api_key,
        papercups.url,
        account.bot.id,
    )
    acme.save()
    api.post(f"tenants/{acme.pk}/suspend")
    conversation = papercups.start_conversation(account, "joe@example.com", customer_name="Joe")
    event = {"event": "message:created", "payload": papercups.visitor_says(account, conversation["id"], "Canada?")}

    with django_capture_on_commit_callbacks() as reply_task:
        response = client.post(
            f"/papercups/webhook?token={acme.webhook_secret}", json.dumps(event), content_type="application/json"
        )
    with django_capture_on_commit_callbacks() as delivery:
        reply_task[0]()  # Celery is eager here: the reply task runs now (its delivery needs a real worker)

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    with tenant_context(acme):
        local = Conversation.objects.get(external_id=conversation["id"])
        assert (local.status, local.handoff_reason) == ("human", "tenant_suspended")
        outgoing = list(
            Message.objects.exclude(role="visitor").values_list("role", "kind", "private", "delivery_status")
        )
    assert outgoing == [("system", "note", True, "pending")]  # a private note for the team, no bot reply
    assert len(delivery) == 1
    assert [m for m in papercups.messages(conversation["id"]) if m["user_id"] == account.bot.id] == []
