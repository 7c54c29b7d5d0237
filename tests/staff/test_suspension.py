"""Suspending a tenant through the admin API refuses its chat API at once, though the tenant was cached just
before; resuming restores it. The channels (Papercups, Crisp), with a real worker, are in
tests/webhooks/live/test_staff_suspension.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django_tenants.utils import tenant_context

from chat.models import Message
from chat.services import knowledge_article_create
from netia.versioned_cache import entry_key
from tenants.models import Tenant
from tenants.selectors import TENANTS_CACHE
from tests.webhooks.conftest import SHIPPING


def _chat(client: Any, tenant: Tenant, session: str = "s1") -> Any:
    return client.post(
        "/api/v1/chat",
        {"session_id": session, "message": "Do you ship to Canada?"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.chat_token}"},
    )


@pytest.fixture
def acme(tenant: Tenant) -> Tenant:
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    return tenant


def test_a_suspended_tenants_chat_api_answers_402_at_once_although_the_tenant_was_cached(api, client, acme):
    before = _chat(client, acme, "before")
    assert cache.get(entry_key(TENANTS_CACHE, f"chat:{acme.chat_token}")) is not None  # the chat API's cached tenant

    api.post(f"tenants/{acme.pk}/suspend")
    refused = _chat(client, acme)
    with tenant_context(acme):
        stored = Message.objects.filter(conversation__session_id="s1").count()
    api.post(f"tenants/{acme.pk}/resume")
    answered = _chat(client, acme)

    assert (before.status_code, before.json()["reply"]) == (200, SHIPPING)
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "payment_required"
    assert refused.json()["error"]["details"] == {"reason": "tenant_suspended"}
    assert stored == 0
    assert (answered.status_code, answered.json()["reply"]) == (200, SHIPPING)
