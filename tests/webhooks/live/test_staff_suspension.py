"""A tenant suspended by staff through the admin API (real HTTP, a staff key) stops its bot on every channel at
once — the chat API, Papercups, Crisp — though the live server has just read it from the cache, and
answers again once resumed. Real worker, committed data, the simulators over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django_tenants.utils import tenant_context

from chat.models import Conversation
from staff.services import staff_key_create
from tenants.models import Tenant, User
from tests.webhooks.conftest import SHIPPING, wait_until
from tests.webhooks.live.conftest import CrispLive, Live

HANDED_OVER = "Netia handed this conversation to your team (reason: tenant suspended).\nLast visitor message: "


@pytest.fixture
def staff_key(db: None) -> Iterator[str]:
    """A staff key of a superuser (committed; removed afterwards with its key)."""
    user = User.objects.create_superuser(f"staff-{uuid.uuid4().hex[:8]}@netia.test", "pw-unused-123")
    try:
        yield staff_key_create(user=user, name="live")[1]
    finally:
        user.delete()


def _admin(server_url: str, key: str, tenant: Tenant, action: str) -> dict[str, Any]:
    response = requests.post(
        f"{server_url}/api/v1/admin/tenants/{tenant.pk}/{action}",
        json={"reason": "live test"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _local(tenant: Tenant, external_id: str) -> Conversation:
    with tenant_context(tenant):
        return Conversation.objects.get(external_id=external_id)


def test_papercups_and_the_chat_api_stop_at_once_when_staff_suspend_and_answer_after_resume(
    live: Live, staff_key: str
) -> None:
    url = live.server.url

    def chat(session: str) -> requests.Response:
        return requests.post(
            f"{url}/api/v1/chat",
            json={"session_id": session, "message": "Do you ship to Canada?"},
            headers={"Authorization": f"Bearer {live.tenant.chat_token}"},
            timeout=10,
        )

    def visitor_asks(expected: int = 1) -> tuple[str, list[dict[str, Any]]]:
        conversation = live.papercups.start_conversation(live.account, "joe@example.com", customer_name="Joe")
        live.papercups.visitor_says(live.account, conversation["id"], "Do you ship to Canada?")
        wait_until(lambda: len(live.bot_messages(conversation["id"])) >= expected)
        live.worker.wait_idle()
        return conversation["id"], live.bot_messages(conversation["id"])

    before_chat = chat("before")  # both lookups (chat token, webhook secret) now cached
    _, before = visitor_asks()
    suspended = _admin(url, staff_key, live.tenant, "suspend")
    refused = chat("during")
    during_id, during = visitor_asks()
    _admin(url, staff_key, live.tenant, "resume")
    after_chat = chat("after")
    _, after = visitor_asks()

    assert (before_chat.status_code, before_chat.json()["reply"]) == (200, SHIPPING)
    assert [(m["body"], m["private"]) for m in before] == [(SHIPPING, False)]
    assert suspended["tenant"]["suspended"] is True
    assert suspended["bot_access"] == {"allowed": False, "reason": "tenant_suspended"}
    assert refused.status_code == 402
    assert refused.json()["error"]["details"] == {"reason": "tenant_suspended"}
    assert [(m["body"], m["private"]) for m in during] == [(f"{HANDED_OVER}Do you ship to Canada?", True)]
    assert (_local(live.tenant, during_id).status, _local(live.tenant, during_id).handoff_reason) == (
        "human",
        "tenant_suspended",
    )
    assert (after_chat.status_code, after_chat.json()["reply"]) == (200, SHIPPING)
    assert [(m["body"], m["private"]) for m in after] == [(SHIPPING, False)]


def test_a_crisp_visitor_gets_no_bot_reply_while_staff_have_the_tenant_suspended(
    crisp_live: CrispLive, staff_key: str
) -> None:
    crisp, website = crisp_live.crisp, crisp_live.website

    def visitor_asks() -> tuple[str, list[dict[str, Any]]]:
        session = crisp.start_session(website)
        crisp.visitor_says(website, session, "Do you ship to Canada?")
        wait_until(lambda: crisp_live.bot_messages(session))
        crisp_live.worker.wait_idle()
        return session, crisp_live.bot_messages(session)

    _, before = visitor_asks()  # the hook's tenant lookup is now cached
    _admin(crisp_live.server.url, staff_key, crisp_live.tenant, "suspend")
    during_session, during = visitor_asks()
    _admin(crisp_live.server.url, staff_key, crisp_live.tenant, "resume")
    _, after = visitor_asks()

    assert [(m["type"], m["content"]) for m in before] == [("text", SHIPPING)]
    assert [(m["type"], m["content"]) for m in during] == [("note", f"{HANDED_OVER}Do you ship to Canada?")]
    assert crisp.conversation(during_session)["state"] == "unresolved"
    local = _local(crisp_live.tenant, during_session)
    assert (local.status, local.handoff_reason) == ("human", "tenant_suspended")
    assert [(m["type"], m["content"]) for m in after] == [("text", SHIPPING)]
