"""Every path under /api/ answers in the JSON error shape, and every JSON body is read with strict types."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django_tenants.utils import tenant_context
from rest_framework.renderers import JSONRenderer

from chat.models import BotConfiguration, KnowledgeArticle, Message
from chat.selectors import bot_configuration_get
from netia.errors import json_rendered
from netia.serializers import StrictTypesMixin
from tenants.audit import SYSTEM
from tenants.services import api_key_create


@pytest.fixture
def key(tenant):
    return api_key_create(tenant=tenant, name="errors", actor=SYSTEM)[1]


def assert_error_shape(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str)
    assert error["code"]


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customer/leads/-1",
        "/api/v1/customer/conversations/not-a-uuid",
        "/api/v1/customer/knowledge/99999999",
        "/api/v1/nope",
        "/api/v1/chat/",
        "/api/nope",
        "/api",
        "/papercups/nope",
    ],
)
def test_unknown_paths_and_ids_under_the_api_are_json_404s(client, key, settings, debug, path):
    settings.DEBUG = debug

    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")

    assert_error_shape(response, 404)


def _api_routes() -> list[str]:
    """Every concrete route under /api/v1/ (parameters filled with harmless values)."""
    routes: list[str] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            text = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + text)
            elif not text.startswith("^"):
                routes.append(
                    prefix
                    + text.replace("<int:lead_id>", "1")
                    .replace("<int:article_id>", "1")
                    .replace("<uuid:conversation_id>", "00000000-0000-0000-0000-000000000000")
                )

    walk(get_resolver().url_patterns, "/")
    return sorted({r for r in routes if r.startswith("/api/v1/")})


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_every_api_route_answers_every_method_with_json_or_success(key, settings, method):
    """Unsupported methods are JSON 405s, failures are JSON 4xx, on every route (debug or not, CSRF enforced)."""
    settings.DEBUG = True
    client = Client(enforce_csrf_checks=True)
    routes = [*_api_routes(), "/api/v1/no-such-route"]
    assert {"/api/v1/metrics", "/api/v1/docs", "/api/v1/customer/leads/1"} <= set(routes)

    for path in routes:
        response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {key}", content_type="application/json")
        if response.status_code >= 400:
            assert_error_shape(response, response.status_code)
        # 503 is billing's documented answer while Stripe is not configured (STRIPE_SECRET_KEY unset).
        assert response.status_code < 500 or (response.status_code == 503 and "/billing/" in path), path


# --- Strict types -----------------------------------------------------------------------------------------------
def test_a_number_is_not_a_message(client, tenant):
    response = client.post(
        "/api/v1/chat",
        {"session_id": "s", "message": 12345},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
    )

    assert_error_shape(response, 400)
    assert response.json()["error"]["details"] == {"fields": {"message": ["Expected a string."]}}
    with tenant_context(tenant):
        assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "chat", {"session_id": 7, "message": "hi"}, "session_id"),
        ("post", "chat", {"message": "hi", "visitor": {"name": 5}}, "visitor"),
        ("post", "chat", {"message": "hi", "visitor": "Ana"}, "visitor"),
        ("post", "customer/knowledge", {"title": 1, "content": "x"}, "title"),
        ("post", "customer/knowledge", {"title": "t", "content": ["x"]}, "content"),
        ("patch", "customer/bot", {"persona": 5}, "persona"),
        ("patch", "customer/bot", {"temperature": "0.5"}, "temperature"),
        ("patch", "customer/bot", {"max_tokens": "400"}, "max_tokens"),
        ("patch", "customer/bot", {"max_tokens": True}, "max_tokens"),
        ("patch", "customer/bot", {"reply_language": 1}, "reply_language"),
        ("post", "customer/billing/checkout", {"plan_id": "1"}, "plan_id"),
        ("post", "customer/billing/portal", {"return_url": 5}, "return_url"),
        ("put", "customer/papercups", {"account_id": 5, "api_key": "k"}, "account_id"),
        ("patch", "customer/chat-settings", {"allowed_origins": "https://a.example"}, "allowed_origins"),
        ("patch", "customer/chat-settings", {"allowed_origins": [1]}, "allowed_origins"),
        ("patch", "customer/chat-settings", {"turns_per_hour": "5"}, "turns_per_hour"),
    ],
)
def test_wrong_json_types_are_400_and_change_nothing(client, tenant, key, method, path, body, field):
    auth = tenant.chat_token if path == "chat" else key
    with tenant_context(tenant):
        before = BotConfiguration.objects.filter(pk=bot_configuration_get().pk).values().first()

    response = getattr(client, method)(
        f"/api/v1/{path}", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {auth}"
    )

    assert_error_shape(response, 400)
    assert list(response.json()["error"]["details"]["fields"]) == [field]
    with tenant_context(tenant):
        assert BotConfiguration.objects.filter(pk=1).values().first() == before
        assert (KnowledgeArticle.objects.count(), Message.objects.count()) == (0, 0)


def test_every_request_body_serializer_is_strict():
    """A new endpoint reading a body with a plain DRF serializer would coerce types again: this catches it."""
    from drf_spectacular.generators import SchemaGenerator

    generator = SchemaGenerator()
    generator._initialise_endpoints()
    checked = []
    for path, _path_regex, method, view in generator._get_paths_and_endpoints():
        serializer = view.schema.get_request_serializer() if method in ("POST", "PUT", "PATCH") else None
        # The webhooks' documented bodies are parsed by webhooks.papercups and webhooks.crisp, which check each
        # type themselves.
        if serializer is not None and path not in ("/papercups/webhook", "/crisp/webhook"):
            checked.append(f"{method} {path}")
            cls = serializer if isinstance(serializer, type) else type(serializer)
            assert issubclass(cls, StrictTypesMixin), f"{method} {path} reads its body with {cls!r}"
    assert len(checked) >= 9


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"reply": "Ça coûte 12 € \u2028 ligne \u2029 fin", "sources": [{"id": 1, "title": "Q&A <b>"}], "ok": True},
        [1, 2.5, None, "\x00"],
        {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC), "id": uuid.UUID(int=1)},
    ],
)
def test_json_served_directly_is_rendered_as_drf_renders_it(body):
    assert json_rendered(body) == JSONRenderer().render(body)


def test_json_served_directly_refuses_what_drf_refuses():
    with pytest.raises(ValueError, match="not JSON compliant"):
        json_rendered({"score": float("nan")})
