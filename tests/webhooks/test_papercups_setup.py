"""Connecting a tenant to Papercups (REST API, API key): validated against GET /api/v1/me on the simulator,
the key encrypted at rest and never shown again, connection checks that say what is wrong, secret rotation,
the widget snippet; and the staff console's view of it."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django_tenants.utils import tenant_context

from chat.services import bot_configuration_update
from tenants.audit import SYSTEM
from tenants.models import AuditEvent, Tenant, User
from tenants.services import api_key_create
from tests.fakes.papercups_server import Account, FakePapercups
from tests.tenants.factories import StaffFactory
from webhooks.models import ConnectionCheck, FailedDelivery

BASE = "/api/v1/customer/papercups"


@pytest.fixture
def account(papercups: FakePapercups, tenant: Tenant) -> Account:
    return papercups.add_account(str(tenant.papercups_account_id), bot_email="bot@acme.test")


@pytest.fixture
def key(tenant: Tenant) -> str:
    return api_key_create(tenant=tenant, name="setup", permissions=["bot:read", "bot:write"], actor=SYSTEM)[1]


def call(client: Any, method: str, path: str, key: str, body: Any = None) -> Any:
    return getattr(client, method)(
        f"{BASE}{path}", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def connect_body(account: Account, papercups: FakePapercups, **changes: Any) -> dict[str, Any]:
    return {"account_id": account.id, "api_key": account.api_key, "base_url": papercups.url, **changes}


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_connecting_checks_the_key_with_papercups_and_stores_it_encrypted(client, tenant, key, papercups, account):
    response = call(client, "put", "", key, connect_body(account, papercups))

    assert response.status_code == 200
    body = response.json()
    secret = Tenant.objects.get(pk=tenant.pk).webhook_secret
    assert body == {
        "connected": True,
        "account_id": account.id,
        "base_url": papercups.url,
        "api_key_set": True,
        "bot_user_id": account.bot.id,
        "webhook_url": f"http://127.0.0.1:8000/papercups/webhook?token={secret[:4]}…",
        "last_check": {
            "ok": True,
            "problem": "",
            "detail": f"Connected as bot@acme.test (Papercups user {account.bot.id}).",
            "bot_user_id": account.bot.id,
            "checked_at": body["last_check"]["checked_at"],
        },
    }
    assert account.api_key not in response.content.decode()
    tenant.refresh_from_db()
    assert (tenant.papercups_api_key, tenant.papercups_bot_user_id, tenant.papercups_base_url) == (
        account.api_key,
        account.bot.id,
        papercups.url,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT papercups_api_key FROM tenants_tenant WHERE id = %s", [tenant.pk])
        (stored,) = cursor.fetchone()
    assert account.api_key not in stored
    (me,) = papercups.requests_to("GET", "/api/v1/me")
    assert me.headers["authorization"] == f"Bearer {account.api_key}"
    (event,) = AuditEvent.objects.filter(tenant=tenant, action="channel.connected")
    assert (event.actor_kind, event.details) == (
        "api_key",
        {"channel": "papercups", "account_id": account.id, "base_url": papercups.url, "checked": True},
    )


@pytest.mark.parametrize(
    ("case", "problem", "message"),
    [
        ("bad_key", "bad_key", "Papercups rejected the API key (401). Create a personal API key in Papercups "),
        ("unreachable", "unreachable", "Could not reach Papercups at http://127.0.0.1:"),
        ("wrong_account", "wrong_account", "The API key belongs to Papercups account "),
        ("not_papercups", "not_found", "http://127.0.0.1:"),
    ],
)
def test_a_connection_papercups_refuses_is_explained_and_nothing_is_stored(
    client, tenant, key, papercups, account, settings, case, problem, message
):
    other = papercups.add_account()
    closed = closed_port_url()
    settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [*settings.NETIA_OUTBOUND_ALLOWED_HOSTS, closed.removeprefix("http://")]
    bodies = {
        "bad_key": connect_body(account, papercups, api_key="SFMyNTY.wrong"),
        "unreachable": connect_body(account, papercups, base_url=closed),
        "wrong_account": connect_body(account, papercups, api_key=other.api_key),
        "not_papercups": connect_body(account, papercups, base_url=f"{papercups.url}/elsewhere"),
    }

    response = call(client, "put", "", key, bodies[case])

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["details"]) == ("papercups_connection_failed", {"problem": problem})
    assert error["message"].startswith(message)
    assert "SFMyNTY" not in error["message"]
    tenant.refresh_from_db()
    assert (tenant.papercups_api_key, tenant.papercups_bot_user_id, tenant.papercups_base_url) == ("", None, "")
    assert not ConnectionCheck.objects.filter(tenant=tenant).exists()
    assert not AuditEvent.objects.filter(tenant=tenant, action="channel.connected").exists()


def test_an_account_another_tenant_uses_is_a_conflict(client, tenant, other_tenant, key, papercups):
    theirs = papercups.add_account(str(other_tenant.papercups_account_id))

    response = call(client, "put", "", key, connect_body(theirs, papercups))

    assert (response.status_code, response.json()["error"]["code"]) == (409, "conflict")
    assert papercups.requests == []
    assert Tenant.objects.get(pk=tenant.pk).papercups_api_key == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account_id": "nope", "api_key": "k"}, "account_id"),
        ({"account_id": "2ebbad4c-1f0a-4c8e-9d3b-eaf9ebf469a5"}, "api_key"),
        ({"account_id": "2ebbad4c-1f0a-4c8e-9d3b-eaf9ebf469a5", "api_key": "k", "base_url": "ftp://x"}, "base_url"),
    ],
)
def test_invalid_connection_input_is_a_400_naming_the_field(client, key, body, field):
    response = call(client, "put", "", key, body)

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == [field]


def test_the_connection_check_reports_what_is_wrong_and_records_it(client, tenant, key, papercups, account):
    call(client, "put", "", key, connect_body(account, papercups))

    healthy = call(client, "post", "/check", key)
    papercups.revoke_api_key(account.api_key)
    revoked = call(client, "post", "/check", key)
    state = call(client, "get", "", key).json()

    assert (healthy.status_code, healthy.json()["ok"], healthy.json()["problem"]) == (200, True, "")
    assert revoked.status_code == 200
    assert {k: v for k, v in revoked.json().items() if k != "checked_at"} == {
        "ok": False,
        "problem": "bad_key",
        "detail": "Papercups rejected the API key (401). Create a personal API key in Papercups "
        "(Integrations, API keys) and save it again.",
        "bot_user_id": None,
    }
    assert (state["last_check"]["problem"], state["connected"]) == ("bad_key", True)
    assert ConnectionCheck.objects.get(tenant=tenant).problem == "bad_key"


def test_an_unconfigured_connection_check_says_so(client, tenant, key, papercups):
    response = call(client, "post", "/check", key)

    assert (response.json()["ok"], response.json()["problem"]) == (False, "not_configured")
    assert response.json()["detail"] == "No Papercups personal API key is configured yet."
    assert papercups.requests == []


def test_rotating_the_webhook_secret_shows_the_new_url_once(client, tenant, key):
    old = tenant.webhook_secret

    response = call(client, "post", "/webhook-secret", key)

    new = Tenant.objects.get(pk=tenant.pk).webhook_secret
    assert new != old
    assert response.json() == {"webhook_url": f"http://127.0.0.1:8000/papercups/webhook?token={new}"}
    assert new not in call(client, "get", "", key).content.decode()
    (event,) = AuditEvent.objects.filter(tenant=tenant, action="webhook_secret.rotated")
    assert (event.actor_kind, event.actor_label.split(" (")[0], event.details) == ("api_key", "setup", {})


def test_the_widget_snippet_uses_the_bot_configuration(client, tenant, key, papercups, account):
    call(client, "put", "", key, connect_body(account, papercups))
    with tenant_context(tenant):
        bot_configuration_update(
            tenant=tenant, widget_title="Acme </script> help", greeting="Hola!", primary_color="#ff0000"
        )

    response = call(client, "get", "/widget", key)

    assert response.status_code == 200
    assert response.json()["config"] == {
        "token": account.id,
        "title": "Acme </script> help",
        "greeting": "Hola!",
        "primaryColor": "#ff0000",
        "baseUrl": papercups.url,
    }
    assert response.json()["snippet"] == (
        "<script>\n"
        "window.Papercups = {\n"
        "  config: {\n"
        f'    token: "{account.id}",\n'
        '    title: "Acme \\u003C/script\\u003E help",\n'
        '    greeting: "Hola!",\n'
        '    primaryColor: "#ff0000",\n'
        f'    baseUrl: "{papercups.url}",\n'
        "  },\n"
        "};\n"
        "</script>\n"
        f'<script type="text/javascript" async defer src="{papercups.url}/widget.js"></script>\n'
    )


def test_the_widget_needs_a_papercups_account(client, tenant, key):
    Tenant.objects.filter(pk=tenant.pk).update(papercups_account_id=None)

    response = call(client, "get", "/widget", key)

    assert (response.status_code, response.json()["error"]["details"]) == (409, {"reason": "not_connected"})


@pytest.mark.parametrize(
    ("permissions", "method", "path", "status"),
    [
        (["bot:read"], "put", "", 403),
        (["bot:read"], "post", "/check", 403),
        (["bot:read"], "post", "/webhook-secret", 403),
        (["bot:write"], "get", "", 403),
        (["chat"], "get", "/widget", 403),
        (None, "get", "", 401),
    ],
)
def test_the_endpoints_need_the_bot_permissions(client, tenant, permissions, method, path, status):
    key = (
        api_key_create(tenant=tenant, name="k", permissions=permissions, actor=SYSTEM)[1] if permissions else "nk_wrong"
    )
    secret = tenant.webhook_secret

    response = call(client, method, path, key, {})

    assert response.status_code == status
    assert Tenant.objects.get(pk=tenant.pk).webhook_secret == secret


# --- Staff console ----------------------------------------------------------------------------------------------------
@pytest.fixture
def staff(db: None) -> User:
    return StaffFactory.create()


def test_staff_see_each_tenants_connection_state_and_can_check_it(client, staff, tenant, papercups, account):
    Tenant.objects.filter(pk=tenant.pk).update(papercups_api_key=account.api_key, papercups_base_url=papercups.url)
    client.force_login(staff)

    never = client.get(reverse("admin:webhooks_papercupsconnection_changelist"))
    checked = client.post(
        reverse("admin:webhooks_papercupsconnection_changelist"),
        {"action": "check_connection", "_selected_action": [tenant.pk]},
        follow=True,
    )
    detail = client.get(reverse("admin:webhooks_papercupsconnection_change", args=[tenant.pk]))

    assert never.status_code == 200
    assert "Never checked" in never.content.decode()
    assert "Checked 1 connection(s); 0 with a problem." in checked.content.decode()
    assert ConnectionCheck.objects.get(tenant=tenant).ok is True
    assert Tenant.objects.get(pk=tenant.pk).papercups_bot_user_id == account.bot.id
    page = detail.content.decode()
    assert detail.status_code == 200
    assert "Connected as bot@acme.test" in page
    assert account.api_key not in page
    assert tenant.webhook_secret not in page


def test_staff_see_failed_deliveries(client, staff, tenant):
    FailedDelivery.objects.create(
        tenant=tenant,
        channel="papercups",
        kind="message",
        conversation_id=1,
        conversation_external_id="3f6a9b12-8c4d-4e7f-a1b2-c3d4e5f60718",
        error="Gave up after the retry window: Papercups answered 503",
        attempts=7,
    )
    client.force_login(staff)

    response = client.get(reverse("admin:webhooks_faileddelivery_changelist"), {"retried_at": "unset"})

    assert response.status_code == 200
    assert "Gave up after the retry window: Papercups answered 503" in response.content.decode()
    assert [f.attempts for f in response.context["cl"].result_list] == [7]


# --- No way in through the connection settings (SSRF) ----------------------------------------------------------------
@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254",
        "http://10.0.0.8:4000",
        "http://localhost:5432",
        "http://[::1]:6379",
        # A public server the tenant runs could vouch for any account id: only the default server and the
        # operator's allow-list verify ownership.
        "https://papercups.attacker.example",
    ],
)
def test_a_base_url_that_is_neither_the_default_nor_allow_listed_is_refused_before_any_call(
    client, tenant, key, papercups, account, base_url
):
    response = call(client, "put", "", key, connect_body(account, papercups, base_url=base_url))

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "base_url", "problem": "base_url_not_allowed"}
    assert papercups.requests == []
    assert Tenant.objects.get(pk=tenant.pk).papercups_base_url == ""


def test_https_is_required_in_production_even_for_an_allow_listed_host(client, tenant, key, papercups, settings):
    settings.NETIA_OUTBOUND_HTTPS_ONLY = True
    stolen = papercups.add_account()

    response = call(client, "put", "", key, connect_body(stolen, papercups))

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "base_url", "problem": "insecure_url"}
    assert papercups.requests == []


def test_papercups_error_bodies_are_not_echoed_to_the_tenant(client, tenant, key, papercups, account):
    papercups.fail_next("GET", "/api/v1/me", 418, times=1, body={"error": {"message": "internal: db=10.0.0.5 user=x"}})

    response = call(client, "put", "", key, connect_body(account, papercups))

    error = response.json()["error"]
    assert (response.status_code, error["details"]) == (400, {"problem": "rejected"})
    assert error["message"] == "Papercups answered 418 to GET /api/v1/me."
