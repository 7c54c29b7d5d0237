"""What every response tells browsers: CSP with nonce'd scripts only, framing and sniffing refused, and CORS on
the public chat API alone, following the tenant's allowed origins."""

from __future__ import annotations

import re

import pytest
from django_tenants.utils import tenant_context

from chat.models import Message
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tenants.services import api_key_create

CHAT = "/api/v1/chat"


def _directives(header: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


@pytest.mark.parametrize("path", ["/", "/admin/login/", "/api/v1/docs", "/no-such-page"])
def test_every_html_page_has_a_csp_that_allows_only_nonced_inline_scripts(client, db, path):
    response = client.get(path)

    assert response["Content-Type"].startswith("text/html")
    policy = _directives(response["Content-Security-Policy"])
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    nonces = [value[len("'nonce-") : -1] for value in policy["script-src"] if value.startswith("'nonce-")]
    html = response.content.decode()
    for attributes in re.findall(r"<script\b([^>]*)>", html):
        if "src=" not in attributes:
            assert re.search(r'nonce="([^"]+)"', attributes), f"inline script without a nonce on {path}"
            assert re.search(r'nonce="([^"]+)"', attributes).group(1) in nonces
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_api_responses_refuse_framing_and_sniffing(client, db):
    response = client.get("/api/v1/health")

    assert (response["X-Frame-Options"], response["X-Content-Type-Options"]) == ("DENY", "nosniff")


def test_json_responses_carry_a_policy_that_loads_nothing_and_is_never_framed(client, db):
    answered = client.get("/api/v1/health")
    refused = client.post("/papercups/webhook", data="{}", content_type="application/json")

    for response in (answered, refused):
        assert response["Content-Type"] == "application/json"
        assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert refused.status_code == 401


# --- CORS ----------------------------------------------------------------------------------------------------------
def chat(client, tenant, origin, body=None):
    return client.post(
        CHAT,
        body or {"message": "hi"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
        HTTP_ORIGIN=origin,
    )


def test_without_allowed_origins_any_website_may_chat(client, tenant):
    response = chat(client, tenant, "https://anyone.example")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://anyone.example"


def test_allowed_origins_restrict_the_chat_api_to_the_tenants_websites(client, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(chat_allowed_origins=["https://shop.example"])

    allowed = chat(client, tenant, "https://shop.example")
    refused = chat(client, tenant, "https://evil.example")

    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example"
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"reason": "origin_not_allowed"}
    assert "Access-Control-Allow-Origin" not in refused
    with tenant_context(tenant):
        assert Message.objects.filter(role="visitor").count() == 1
    # Programs (no Origin header) are not browsers: the token alone authorises them.
    assert (
        client.post(
            CHAT, {"message": "hi"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}"
        ).status_code
        == 200
    )


def test_the_chat_api_answers_preflights(client, db):
    response = client.options(
        CHAT,
        HTTP_ORIGIN="https://shop.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "authorization" in response["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("path", ["/api/v1/customer/leads", "/api/v1/health", "/api/v1/customer/chat-settings"])
def test_other_apis_send_no_cors_headers(client, tenant, path):
    _, key = api_key_create(tenant=tenant, name="cors", actor=SYSTEM)

    preflight = client.options(path, HTTP_ORIGIN="https://x.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    actual = client.get(path, HTTP_ORIGIN="https://x.example", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert actual.status_code == 200
    assert not [h for h in (*preflight.headers, *actual.headers) if h.lower().startswith("access-control-")]


@pytest.mark.parametrize(("path", "vary"), [(CHAT, "origin"), ("/papercups/webhook", None)])
def test_a_request_without_an_origin_gets_vary_where_cors_applies_without_its_headers_being_read(
    client, tenant, path, vary
):
    response = client.post(
        path, {"message": "hi"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}"
    )

    assert (response.get("Vary"), [h for h in response.headers if h.lower().startswith("access-control-")]) == (
        vary,
        [],
    )
    # django-cors-headers would have built `request.headers` (every META entry) to find no Origin in it.
    assert "headers" not in response.wsgi_request.__dict__
