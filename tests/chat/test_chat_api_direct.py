"""The chat API's direct path (served without DRF's wrapping): only while the view is configured as it
reproduces, for every JSON content type DRF reads as such, and counting a tenant's cap once when a reply is lost."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django_ratelimit.core import get_usage
from django_tenants.utils import tenant_context
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.parsers import FormParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.throttling import BaseThrottle

from chat.api.public import ChatMessageCreateApi
from chat.chat_api import chat_api_turn_cache_keys
from chat.models import Message
from chat.services import knowledge_article_create
from tenants.authentication import ChatTokenAuthentication
from tests.probes import redis_commands_recorded

URL = "/api/v1/chat"
SHIPPING = "We ship to Canada in 3 to 5 business days for 12 dollars."


def post(client, token, body, **extra):
    return client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


class DenyAll(BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return False


def test_a_permission_class_set_on_the_view_refuses_a_plain_post(client, tenant, monkeypatch):
    assert post(client, tenant.chat_token, {"message": "hi"}).status_code == 200
    monkeypatch.setattr(ChatMessageCreateApi, "permission_classes", [DenyAll])

    direct = post(client, tenant.chat_token, {"message": "hi", "session_id": "denied"})
    negotiated = post(client, tenant.chat_token, {"message": "hi"}, HTTP_ACCEPT="application/json;q=0.9")

    assert (direct.status_code, negotiated.status_code) == (403, 403)
    assert direct.content == negotiated.content
    with tenant_context(tenant):
        assert not Message.objects.filter(conversation__session_id="denied").exists()


class RefuseAll(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        return False


class FailAll(BaseAuthentication):
    def authenticate(self, request: Any) -> None:
        raise AuthenticationFailed("No.")

    def authenticate_header(self, request: Any) -> str:
        return "Test"


@pytest.mark.parametrize(
    ("attribute", "value", "status"),
    [
        ("throttle_classes", [RefuseAll], 429),
        ("authentication_classes", [FailAll, ChatTokenAuthentication], 401),
        ("parser_classes", [FormParser], 415),
        ("renderer_classes", [BrowsableAPIRenderer], 200),
    ],
)
def test_a_view_configured_otherwise_answers_as_drf_does(client, tenant, monkeypatch, attribute, value, status):
    assert post(client, tenant.chat_token, {"message": "hi"}).status_code == 200
    monkeypatch.setattr(ChatMessageCreateApi, attribute, value)

    response = post(client, tenant.chat_token, {"message": "hi"})

    assert response.status_code == status
    if attribute == "renderer_classes":
        assert response["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", "Application/JSON;Charset=utf-8"])
def test_a_json_content_type_in_other_case_is_served_directly(client, tenant, monkeypatch, content_type):
    if not hasattr(cache, "client"):
        pytest.skip("the cache is not Redis (REDIS_URL unset)")
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    question = "How long does shipping to Canada take?"
    assert post(client, tenant.chat_token, {"message": question, "session_id": "v1"}).json()["reply"] == SHIPPING
    commands = redis_commands_recorded(monkeypatch)

    response = client.post(
        URL,
        f'{{"message": "{question}", "session_id": "v2"}}',
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
    )

    assert response.status_code == 200
    assert response.json()["reply"] == SHIPPING
    assert commands == ["EVALSHA"]  # the direct path's one round trip (DRF's path makes two)


class ReplyDroppingProxy:
    """A TCP proxy to Redis that forwards every command but, for a script (EVALSHA) naming `marker`, drops
    Redis' reply and closes the client's connection: the script ran, its caller never learns the result."""

    def __init__(self, host: str, port: int, marker: bytes) -> None:
        self.target, self.marker, self.dropped = (host, port), marker, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        drop = False
        try:
            while True:
                ready, _, _ = select.select([client, server], [], [], 5)
                if not ready:
                    continue
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    drop = drop or (data.startswith(b"*") and b"EVALSHA" in data and self.marker in data)
                    server.sendall(data)
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        return
                    if drop:
                        self.dropped += 1
                        return
                    client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()

    def close(self) -> None:
        self.stopping = True
        self.listener.close()


@pytest.fixture
def lossy_redis(settings) -> Iterator[ReplyDroppingProxy]:
    if not hasattr(cache, "client"):
        pytest.skip("the cache is not Redis (REDIS_URL unset)")
    location = urlsplit(settings.CACHES["default"]["LOCATION"])
    # The direct path's script is the one that reads the tenant cache's version (its guard).
    proxy = ReplyDroppingProxy(location.hostname or "127.0.0.1", location.port or 6379, b"version:tenants")
    conf = {alias: dict(value) for alias, value in settings.CACHES.items()}
    conf["default"]["LOCATION"] = urlunsplit(location._replace(netloc=f"127.0.0.1:{proxy.port}"))
    settings.CACHES = conf
    yield proxy
    proxy.close()


def _tenant_cap_count(tenant, per_hour: int) -> int:
    request, rate = RequestFactory().post(URL), f"{per_hour}/h"
    usage = get_usage(request, group="chat:tenant", key=lambda group, req: str(tenant.pk), rate=rate)
    return usage["count"] if usage else 0


def test_a_reply_lost_after_the_script_ran_counts_the_tenant_cap_once(client, tenant, settings, request):
    settings.CHAT_TENANT_TURNS_PER_HOUR = 50
    # The worker knows the token's tenant (the direct path's guess) and Redis knows the script.
    assert post(client, tenant.chat_token, {"message": "hi"}).status_code == 200
    before = _tenant_cap_count(tenant, 50)
    direct_to_redis = {alias: dict(value) for alias, value in settings.CACHES.items()}
    proxy = request.getfixturevalue("lossy_redis")

    response = post(client, tenant.chat_token, {"message": "hi", "session_id": "lost-reply"})

    settings.CACHES = direct_to_redis  # counted below on Redis itself
    assert response.status_code == 200  # the limits fail open
    assert proxy.dropped >= 1  # each attempt (redis-py retries) ran the script, which counted the cap once
    assert _tenant_cap_count(tenant, 50) - before == proxy.dropped


def test_a_tenants_turn_cache_keys_are_the_same_from_any_schema(tenant, other_tenant):
    # The direct path reads them before authentication, in the public schema, without switching to the tenant's.
    from_public = chat_api_turn_cache_keys(tenant=tenant)
    with tenant_context(other_tenant):
        from_another_tenant = chat_api_turn_cache_keys(tenant=tenant)
    with tenant_context(tenant):
        from_its_own = chat_api_turn_cache_keys(tenant=tenant)

    assert from_public == from_another_tenant == from_its_own
    assert f"botconfig:{tenant.schema_name}" in " ".join(from_public)
