"""Connecting a tenant's Crisp website (REST API): checked against the plugin's installed websites on the
simulator, one website per tenant, checks that say what is wrong, the chatbox snippet, the staff console."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django_tenants.utils import tenant_context

from chat.services import bot_configuration_update
from tenants.audit import SYSTEM
from tenants.models import ApiKey, AuditEvent, Tenant, User
from tenants.services import api_key_create
from webhooks.models import CrispConnection

BASE = "/api/v1/customer/crisp"


@pytest.fixture
def key(tenant: Tenant) -> str:
    return api_key_create(tenant=tenant, name="setup", permissions=["bot:read", "bot:write"], actor=SYSTEM)[1]


def call(client: Any, method: str, path: str, key: str, body: Any = None) -> Any:
    return getattr(client, method)(
        f"{BASE}{path}", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def test_connecting_checks_the_plugin_is_installed_on_the_website(client, tenant, key, crisp, website):
    crisp.website_page_size = 1
    crisp.add_website("Listed first")  # the tenant's website is on the second page
    crisp.websites = dict(reversed(list(crisp.websites.items())))
    operator = website.operators[0]

    response = call(
        client, "put", "", key, {"website_id": website.website_id.upper(), "handoff_operator_id": operator.user_id}
    )

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "connected": True,
        "website_id": website.website_id,
        "plugin_installed": True,
        "handoff_operator_id": operator.user_id,
        "hook_url": "http://127.0.0.1:8000/crisp/webhook",
        "last_check": {
            "ok": True,
            "problem": "",
            "detail": f"The Crisp website {website.website_id} has the Netia plugin installed; handed-off "
            f"conversations go to operator {operator.user_id}.",
            "checked_at": body["last_check"]["checked_at"],
        },
    }
    assert call(client, "get", "", key).json() == body
    paths = [r.path for r in crisp.requests]
    assert paths == [
        "/v1/plugin/connect/websites/all/1",
        "/v1/plugin/connect/websites/all/2",
        f"/v1/website/{website.website_id}/operators/list",
    ]
    assert {r.headers["x-crisp-tier"] for r in crisp.requests} == {"plugin"}
    assert CrispConnection.objects.get(tenant=tenant).website_id == website.website_id
    (event,) = AuditEvent.objects.filter(tenant=tenant, action="channel.connected")
    assert (event.actor_kind, event.actor_label, event.ip, event.details) == (
        "api_key",
        str(ApiKey.objects.get(tenant=tenant, name="setup")),
        "127.0.0.1",
        {"channel": "crisp", "website_id": website.website_id, "handoff_operator_id": operator.user_id,
         "checked": True},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("case", "status", "problem"),
    [
        ("not_installed", 400, "not_installed"),
        ("unknown_operator", 400, "unknown_operator"),
        ("bad_token", 400, "bad_token"),
        ("quota", 400, "quota"),
        ("taken", 409, None),
        ("not_a_uuid", 400, None),
    ],
)
def test_a_connection_crisp_refuses_is_not_stored(
    client, tenant, other_tenant, key, crisp, website, settings, case, status, problem
):
    body: dict[str, str] = {"website_id": website.website_id}
    if case == "not_installed":
        body["website_id"] = crisp.add_website("Never installed", installed=False).website_id
    elif case == "unknown_operator":
        body["handoff_operator_id"] = "6f9b3c1e-0000-4000-8000-000000000000"
    elif case == "bad_token":
        settings.CRISP_PLUGIN_KEY = "wrong"
    elif case == "quota":
        crisp.daily_quota = 0
    elif case == "taken":
        CrispConnection.objects.create(tenant=other_tenant, website_id=website.website_id)
    else:
        body["website_id"] = "acme.crisp.chat"

    response = call(client, "put", "", key, body)

    assert response.status_code == status
    error = response.json()["error"]
    if problem is not None:
        assert (error["code"], error["details"]) == ("crisp_connection_failed", {"problem": problem})
    assert not CrispConnection.objects.filter(tenant=tenant).exists()
    assert not AuditEvent.objects.filter(tenant=tenant, action="channel.connected").exists()


def test_without_the_plugin_settings_connecting_is_a_503_and_the_check_says_why(client, tenant, key, settings):
    settings.CRISP_PLUGIN_IDENTIFIER = ""

    refused = call(client, "put", "", key, {"website_id": "42286ab3-1f0a-4c8e-9d3b-eaf9ebf469a5"})
    check = call(client, "post", "/check", key)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "crisp_not_configured"
    assert (check.status_code, check.json()["problem"]) == (200, "not_configured")


def test_the_check_follows_the_plugin_being_removed_and_reinstalled(client, tenant, key, crisp, website):
    unconnected = call(client, "post", "/check", key).json()
    call(client, "put", "", key, {"website_id": website.website_id})
    crisp.uninstall(website)

    removed = call(client, "post", "/check", key).json()
    state = call(client, "get", "", key).json()
    crisp.install(website)
    back = call(client, "post", "/check", key).json()

    assert unconnected["problem"] == "not_connected"
    assert (removed["ok"], removed["problem"]) == (False, "not_installed")
    assert (state["connected"], state["plugin_installed"], state["last_check"]["problem"]) == (
        False,
        False,
        "not_installed",
    )
    assert (back["ok"], back["problem"]) == (True, "")
    assert CrispConnection.objects.get(tenant=tenant).plugin_installed is True


def test_the_widget_snippet_carries_the_website_and_the_bots_language(client, tenant, key, crisp, website):
    before = call(client, "get", "/widget", key)
    call(client, "put", "", key, {"website_id": website.website_id})
    with tenant_context(tenant):
        bot_configuration_update(tenant=tenant, language="fr")

    response = call(client, "get", "/widget", key)

    assert (before.status_code, before.json()["error"]["details"]) == (409, {"reason": "not_connected"})
    assert response.status_code == 200
    body = response.json()
    assert body["config"] == {"website_id": website.website_id, "locale": "fr"}
    assert f'window.CRISP_WEBSITE_ID = "{website.website_id}";' in body["snippet"]
    assert 'window.CRISP_RUNTIME_CONFIG = {"locale": "fr"};' in body["snippet"]
    assert 's.src = "https://client.crisp.chat/l.js"' in body["snippet"]


def test_reading_needs_bot_read_and_changing_needs_bot_write(client, tenant, crisp, website):
    reader = api_key_create(tenant=tenant, name="reader", permissions=["bot:read"], actor=SYSTEM)[1]

    assert call(client, "get", "", reader).status_code == 200
    assert call(client, "put", "", reader, {"website_id": website.website_id}).status_code == 403
    assert call(client, "post", "/check", reader).status_code == 403
    assert not CrispConnection.objects.filter(tenant=tenant).exists()


def test_staff_see_crisp_connections_and_check_them(client, tenant, key, crisp, website):
    call(client, "put", "", key, {"website_id": website.website_id})
    crisp.uninstall(website)
    connection = CrispConnection.objects.get(tenant=tenant)
    staff = User.objects.create_user("staff@netia.test", is_staff=True, is_superuser=True)
    client.force_login(staff)

    listing = client.get(reverse("admin:webhooks_crispconnection_changelist"))
    checked = client.post(
        reverse("admin:webhooks_crispconnection_changelist"),
        {"action": "check_connection", "_selected_action": [connection.pk]},
        follow=True,
    )

    assert listing.status_code == 200
    assert website.website_id in listing.content.decode()
    assert "Checked 1 connection(s); 1 with a problem. Acme Test Shop: not_installed" in checked.content.decode()
