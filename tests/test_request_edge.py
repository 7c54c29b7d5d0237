"""What the middleware does on the machine-to-machine paths (the webhooks, the token-authenticated API) and on the
browser paths: security headers, the body limit, request logging and metrics everywhere; sessions, CSRF, sign-in
and the portal only where a browser's session is the credential."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from prometheus_client import REGISTRY

from chat.models import KnowledgeArticle
from dashboard.portal import SESSION_TENANT_KEY
from netia.middleware import UNRECORDED_METRICS
from tenants.models import Tenant, User
from tests.fakes.papercups_server import Account, FakePapercups
from tests.webhooks import conftest as channels

# The Papercups simulator and its account, from the channel tests' fixtures.
papercups, account = channels.papercups, channels.account

WEBHOOK = "/papercups/webhook"
CHAT = "/api/v1/chat"
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture
def connected(tenant: Tenant, account: Account, papercups: FakePapercups) -> Tenant:
    return channels.papercups_connect(tenant, account, papercups)


# The endpoint fixtures are looked up by name: each test names `tenant` too, so that pytest-django schedules it
# with the database tests (a test that only asks for the database at run time is run after the flushing ones).
@pytest.fixture
def ack(connected: Tenant, papercups: FakePapercups, account: Account) -> Callable[..., Any]:
    """POST a visitor's message to the Papercups webhook (`token` defaults to the tenant's secret)."""

    def send(client: Client, token: str | None = None, **extra: Any) -> Any:
        conversation = papercups.start_conversation(account, "joe@example.com", customer_name="Joe")
        body = {"event": "message:created", "payload": papercups.visitor_says(account, conversation["id"], "Hello")}
        url = f"{WEBHOOK}?token={connected.webhook_secret if token is None else token}"
        return client.post(url, data=json.dumps(body), content_type="application/json", **extra)

    return send


@pytest.fixture
def chat(tenant: Tenant) -> Callable[..., Any]:
    """POST a visitor's first message to the public chat API (`token` defaults to the tenant's chat token)."""

    def send(client: Client, token: str | None = None, **extra: Any) -> Any:
        return client.post(
            CHAT,
            {"message": "Hello"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token if token is None else token}",
            **extra,
        )

    return send


@pytest.fixture
def owner_session(tenant: Tenant) -> Client:
    """A browser signed in to the portal as tenant A's owner (its session cookie goes with every request)."""
    client = Client()
    client.force_login(User.objects.get(email="owner@acme.test"))
    session = client.session
    session[SESSION_TENANT_KEY] = tenant.pk
    session.save()
    return client


# --- Security headers ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["ack", "chat"])
def test_machine_paths_get_every_security_header(request, client, tenant, settings, endpoint):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    send = request.getfixturevalue(endpoint)

    response = send(client, secure=True)

    assert response.status_code == 200
    assert {
        name: response.get(name)
        for name in (
            "Strict-Transport-Security",
            "X-Content-Type-Options",
            "Referrer-Policy",
            "Cross-Origin-Opener-Policy",
            "X-Frame-Options",
            "Content-Security-Policy",
        )
    } == {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": JSON_POLICY,
    }


@pytest.mark.parametrize("path", [WEBHOOK, CHAT, "/crisp/webhook"])
def test_machine_paths_refuse_an_oversized_body(client, db, settings, path):
    settings.API_MAX_BODY_BYTES = 100

    response = client.post(path, data=json.dumps({"message": "x" * 200}), content_type="application/json")

    assert (response.status_code, response.json()["error"]["details"]) == (413, {"max_bytes": 100})


# --- Request logging --------------------------------------------------------------------------------------------------
def _finished(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == "request_finished"
    ]


@pytest.mark.parametrize(
    ("endpoint", "code", "logged_request"),
    [("ack", 403, f"POST {WEBHOOK}?token=[redacted]"), ("chat", 401, f"POST {CHAT}")],
)
def test_a_refused_machine_request_is_logged_with_its_request_id_and_client(
    request, client, tenant, caplog, endpoint, code, logged_request
):
    send = request.getfixturevalue(endpoint)

    with caplog.at_level(logging.WARNING):
        first = send(client, token="wrong", REMOTE_ADDR="203.0.113.9")
        second = send(client, token="wrong", REMOTE_ADDR="203.0.113.9")

    assert (first.status_code, second.status_code) == (code, code)
    logged = _finished(caplog)
    assert [(line["code"], line["request"], line["ip"], line["level"]) for line in logged] == [
        (code, logged_request, "203.0.113.9", "warning")
    ] * 2
    ids = [line["request_id"] for line in logged]
    assert ids[0] != ids[1]
    assert [str(uuid.UUID(request_id)) for request_id in ids] == ids


# --- Metrics ----------------------------------------------------------------------------------------------------------
def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in REGISTRY.collect()
        if metric.name.startswith("django_")
        for sample in metric.samples
    }


def _delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.mark.parametrize(("endpoint", "view"), [("ack", "papercups-webhook"), ("chat", "chat-message-create")])
def test_machine_requests_are_counted_with_their_view_status_and_statements(request, client, tenant, endpoint, view):
    send = request.getfixturevalue(endpoint)
    before = _samples()

    with CaptureQueriesContext(connection) as statements:
        response = send(client)

    after = _samples()
    assert response.status_code == 200
    http = {"method": "POST", "view": view}
    db = {"alias": "default", "vendor": "postgresql"}
    assert {
        "requests": _delta(before, after, "django_http_requests_total_by_method_total", method="POST"),
        "by_view": _delta(
            before, after, "django_http_requests_total_by_view_transport_method_total", transport="http", **http
        ),
        "responses": _delta(
            before, after, "django_http_responses_total_by_status_view_method_total", status="200", **http
        ),
        "by_status": _delta(before, after, "django_http_responses_total_by_status_total", status="200"),
        "latency": _delta(before, after, "django_http_requests_latency_seconds_by_view_method_count", **http),
        "latency_all": _delta(before, after, "django_http_requests_latency_including_middlewares_seconds_count"),
        "statements": _delta(before, after, "django_db_execute_total", **db),
        "timed_statements": _delta(before, after, "django_db_query_duration_seconds_count", **db),
    } == {
        "requests": 1,
        "by_view": 1,
        "responses": 1,
        "by_status": 1,
        "latency": 1,
        "latency_all": 1,
        "statements": len(statements),
        "timed_statements": len(statements),
    }


@pytest.mark.parametrize("endpoint", ["ack", "chat"])
def test_metrics_that_repeat_another_ones_count_are_not_exported(request, client, tenant, endpoint):
    send = request.getfixturevalue(endpoint)

    response = send(client)

    exported = {sample.name for metric in REGISTRY.collect() for sample in metric.samples}
    assert response.status_code == 200
    assert exported & UNRECORDED_METRICS == set()
    # What they repeated.
    assert {
        "django_http_requests_latency_including_middlewares_seconds_count",
        "django_http_requests_total_by_view_transport_method_total",
    } <= exported


def test_a_failed_statement_is_counted_as_an_error(db):
    before = _samples()

    with (
        CaptureQueriesContext(connection) as statements,
        connection.cursor() as cursor,
        pytest.raises(ProgrammingError, match="no_such_table"),
        transaction.atomic(),
    ):
        cursor.execute("SELECT 1 FROM no_such_table")

    after = _samples()
    labels = {"alias": "default", "vendor": "postgresql"}
    assert _delta(before, after, "django_db_execute_total", **labels) == len(statements)
    assert _delta(before, after, "django_db_errors_total", type="UndefinedTable", **labels) == 1


# --- Sessions: read only where they are the credential ---------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["ack", "chat"])
def test_machine_paths_never_read_a_browsers_session(request, owner_session, endpoint):
    send = request.getfixturevalue(endpoint)

    with CaptureQueriesContext(connection) as statements:
        response = send(owner_session)

    assert response.status_code == 200
    touched = [query["sql"] for query in statements if re.search(r"django_session|tenants_user\b", query["sql"])]
    assert touched == []
    assert "Vary" not in response or "Cookie" not in response["Vary"]


def test_the_staff_api_still_authenticates_by_session(tenant):
    staff = User.objects.create_user(email="staff@netia.test", password="x", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)

    response = client.get("/api/v1/admin/stats")

    assert response.status_code == 200


# --- CSRF still guards every session-authenticated write ------------------------------------------------------------
def test_a_portal_write_without_the_csrf_token_is_refused(tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.get(email="owner@acme.test"))
    session = client.session
    session[SESSION_TENANT_KEY] = tenant.pk
    session.save()

    response = client.post("/portal/knowledge/new", {"title": "Shipping", "content": "We ship."})

    assert response.status_code == 403
    with tenant_context(tenant):
        assert not KnowledgeArticle.objects.exists()


def test_a_staff_console_write_without_the_csrf_token_is_refused(db):
    staff = User.objects.create_user(email="staff@netia.test", password="x", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    response = client.post("/admin/tenants/user/add/", {"email": "new@netia.test"})

    assert response.status_code == 403
    assert not User.objects.filter(email="new@netia.test").exists()


def test_a_staff_api_write_with_the_session_but_without_the_csrf_token_is_refused(tenant):
    staff = User.objects.create_user(email="staff@netia.test", password="x", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    response = client.post(f"/api/v1/admin/tenants/{tenant.pk}/suspend", content_type="application/json")

    assert (response.status_code, response.json()["error"]["code"]) == (403, "csrf_failed")
    tenant.refresh_from_db()
    assert tenant.suspended_at is None
