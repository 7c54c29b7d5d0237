"""Statement budgets of the two hot paths: the webhook acknowledgement and a chat turn.

Timings live in benchmarks/ (`make bench`), never here; these guards only count the SQL statements a request
sends once its caches are warm, with the connection left in another schema by the previous request (as a
worker serving many tenants finds it). Counts include the SAVEPOINT/RELEASE pairs the test's own
transaction turns nested blocks into.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import LazySettings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from billing.models import UsagePeriod
from chat.models import Message
from chat.services import knowledge_article_create
from netia.tenancy import tenant_connection, use_public_schema
from tenants.models import Tenant
from tests.fakes.papercups_server import FakePapercups
from tests.probes import redis_commands_recorded

SHIPPING = "We ship to Canada in 3 to 5 business days for 12 dollars."


def _search_path_sets(queries: list[dict[str, Any]]) -> int:
    return sum(q["sql"].startswith("SET search_path") for q in queries)


def _leave_connection_in(schema_tenant: Tenant | None) -> None:
    """Run one statement in `schema_tenant`'s schema (None: public), as the previous request would have."""
    if schema_tenant is None:
        use_public_schema()
    else:
        tenant_connection().set_tenant(schema_tenant)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    use_public_schema()


def _chat(client: Any, tenant: Tenant, session: str, message: str, token: str = "") -> Any:
    body = {"conversation_token": token} if token else {"session_id": session}
    return client.post(
        "/api/v1/chat",
        data=json.dumps({**body, "message": message}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.chat_token}"},
    )


def _statements(queries: list[dict[str, Any]]) -> list[str]:
    """Each captured query's kind: its statement's first word, or "SELECT … FOR UPDATE" for a row lock, after
    "SET search_path; " when the path rides with it (netia.db_backend)."""
    kinds = []
    for query in queries:
        sql = query["sql"]
        riding = sql.startswith("SET search_path = ") and "; " in sql
        statement = sql.split("; ", 1)[1] if riding else sql
        kind = "SELECT … FOR UPDATE" if " FOR UPDATE" in statement else statement.split(None, 1)[0].upper()
        kinds.append(f"SET search_path; {kind}" if riding else kind)
    return kinds


def _with_atomic_depth(statements: list[tuple[str, int]]) -> Any:
    """Record each statement's first word and how many atomic blocks were open around it."""

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql.split(None, 1)[0].upper(), len(connection.atomic_blocks)))
        return execute(sql, params, many, context)

    return connection.execute_wrapper(record)


def test_a_metered_chat_turn_of_a_new_session_answered_offline_sends_at_most_3_queries_and_locks_nothing(
    client, tenant, other_tenant, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    # Committed, as every earlier request's writes are (a version bumped inside a transaction is provisional:
    # nothing is cached under it until the commit).
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    with django_capture_on_commit_callbacks(execute=True):
        assert _chat(client, tenant, "warm-up", "Hello, do you ship to Canada?").status_code == 200
    _leave_connection_in(other_tenant)

    depths: list[tuple[str, int]] = []
    with CaptureQueriesContext(connection) as captured, django_assert_max_num_queries(3), _with_atomic_depth(depths):
        response = _chat(client, tenant, "visitor-1", "How long does shipping to Canada take?")

    assert response.status_code == 200
    assert response.json()["reply"] == SHIPPING
    assert _search_path_sets(captured.captured_queries) == 1
    # Nobody else can see a new conversation before its turn commits: one statement writes the conversation,
    # both messages and the usage, atomic alone (no BEGIN or COMMIT when served); no row lock, nothing read
    # back.
    assert _statements(captured.captured_queries) == [
        "SET search_path; SELECT",  # the tenant's search_path, riding with the period's usage (bot access)
        "WITH",  # retrieval
        "WITH",  # the conversation unless its session_id is taken, the visitor's message, the answer naming it
        # and the usage counted
    ]
    assert len({depth for _, depth in depths}) == 1  # no transaction of its own
    with tenant_context(tenant):
        visitor, reply = Message.objects.filter(conversation__session_id="visitor-1").order_by("created_at")
        assert (visitor.role, visitor.answered_by_id, reply.role, reply.content) == (
            "visitor",
            reply.pk,
            "bot",
            SHIPPING,
        )
        assert visitor.pk < reply.pk
        assert reply.conversation.last_message_at is not None
    assert UsagePeriod.objects.get(tenant=tenant).ai_replies == 2  # the warm-up's answer and this one


def test_an_unmetered_first_turn_is_one_write_statement_with_no_transaction_of_its_own(
    client, tenant, other_tenant, django_assert_max_num_queries
):
    assert _chat(client, tenant, "warm-up", "Hello").status_code == 200
    _leave_connection_in(other_tenant)

    depths: list[tuple[str, int]] = []
    with CaptureQueriesContext(connection) as captured, _with_atomic_depth(depths):
        response = _chat(client, tenant, "visitor-2", "Hello")

    assert (response.status_code, response.json()["intent"]) == (200, "greeting")
    # The greeting is not metered and captures no lead: one statement (reads aside) is the whole write, atomic
    # alone: no block of its own around it.
    assert [s for s in _statements(captured.captured_queries) if s != "SELECT"] == ["SET search_path; SELECT", "WITH"]
    assert len({depth for _, depth in depths}) == 1
    with tenant_context(tenant):
        visitor, reply = Message.objects.filter(conversation__session_id="visitor-2").order_by("created_at")
        assert (visitor.answered_by_id, visitor.conversation_id, reply.conversation_id) == (
            reply.pk,
            reply.conversation_id,
            visitor.conversation.pk,
        )
        assert visitor.pk < reply.pk


def test_a_later_turn_of_a_session_sends_at_most_12_statements(
    client, tenant, other_tenant, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):  # committed, as above
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    with django_capture_on_commit_callbacks(execute=True):
        first = _chat(client, tenant, "visitor-2", "Hello, do you ship to Canada?")
    assert first.status_code == 200
    _leave_connection_in(other_tenant)

    # Retrieval reads the knowledge base's state (version, newest passage) in its candidates statement.
    with CaptureQueriesContext(connection) as captured, django_assert_max_num_queries(12):
        response = _chat(
            client, tenant, "", "And how long does shipping take?", token=first.json()["conversation_token"]
        )

    assert response.status_code == 200
    assert response.json()["reply"] == SHIPPING
    assert _search_path_sets(captured.captured_queries) == 1
    with tenant_context(tenant):
        assert Message.objects.filter(conversation__session_id="visitor-2").count() == 4


def test_the_papercups_webhook_ack_sends_at_most_3_statements(
    client, tenant, other_tenant, django_assert_max_num_queries
):
    with FakePapercups() as papercups:
        account = papercups.add_account(str(tenant.papercups_account_id))
        url = f"/papercups/webhook?token={tenant.webhook_secret}"

        def event() -> bytes:
            conversation = papercups.start_conversation(account, "joe@example.com")
            payload = papercups.visitor_says(account, conversation["id"], "Do you ship to Canada?")
            return json.dumps({"event": "message:created", "payload": payload}).encode()

        assert client.post(url, data=event(), content_type="application/json").json() == {"status": "accepted"}
        _leave_connection_in(other_tenant)

        with django_assert_max_num_queries(3):
            response = client.post(url, data=event(), content_type="application/json")

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})


def test_a_switch_back_to_the_schema_in_force_sets_no_search_path(tenant):
    tenant_connection().set_tenant(tenant)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    use_public_schema()  # what a request's end does, with no statement after it

    tenant_connection().set_tenant(tenant)
    with CaptureQueriesContext(connection) as captured, connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        in_force = cursor.fetchone()[0]

    assert (in_force, _search_path_sets(captured.captured_queries)) == (f"{tenant.schema_name}, public", 0)


def test_the_search_path_is_set_again_after_a_rollback_undid_it(tenant):
    _leave_connection_in(None)

    def enter_and_fail() -> None:
        with transaction.atomic():
            tenant_connection().set_tenant(tenant)
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")  # the SET goes out inside the block the rollback undoes
            raise RuntimeError

    with CaptureQueriesContext(connection) as captured:
        with pytest.raises(RuntimeError):
            enter_and_fail()
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('search_path')")
            in_force = cursor.fetchone()[0]

    # Once inside the block, and again after the rollback reverted it (before the next statement).
    assert (in_force, _search_path_sets(captured.captured_queries)) == (f"{tenant.schema_name}, public", 2)


def test_a_chat_turn_of_a_new_session_makes_2_redis_round_trips(client, tenant, monkeypatch):
    if not hasattr(cache, "client"):
        pytest.skip("the cache is not Redis (REDIS_URL unset)")
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    assert _chat(client, tenant, "warm-up", "Hello, do you ship to Canada?").status_code == 200
    commands = redis_commands_recorded(monkeypatch)

    response = _chat(client, tenant, "visitor-3", "How long does shipping to Canada take?")

    assert response.json()["reply"] == SHIPPING
    # One script: the rate limits per IP and token, the tenant cache's version, the tenant's hourly cap (the
    # worker knows the token's tenant), the billing state, the bot's configuration and the answer cache's entry
    # (missing: a new question). Then the answer's write to the cache.
    assert commands == ["EVALSHA", "SET"]


def test_a_repeated_first_question_is_answered_from_the_cache_in_one_redis_round_trip(client, tenant, monkeypatch):
    if not hasattr(cache, "client"):
        pytest.skip("the cache is not Redis (REDIS_URL unset)")
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    question = "How long does shipping to Canada take?"
    assert _chat(client, tenant, "visitor-4", question).json()["reply"] == SHIPPING
    commands = redis_commands_recorded(monkeypatch)

    response = _chat(client, tenant, "visitor-5", question)

    assert response.json()["reply"] == SHIPPING
    assert commands == ["EVALSHA"]
    with tenant_context(tenant):
        assert Message.objects.get(conversation__session_id="visitor-5", role="bot").from_cache is True


def test_a_chat_turn_builds_its_tenant_once_when_the_worker_knows_the_token(client, tenant):
    assert _chat(client, tenant, "warm-up", "Hello").status_code == 200
    built: list[int] = []

    def record(sender: type[Tenant], instance: Tenant, **kwargs: Any) -> None:
        built.append(instance.pk)

    post_init.connect(record, sender=Tenant)
    try:
        response = _chat(client, tenant, "visitor-6", "Hello again")
    finally:
        post_init.disconnect(record, sender=Tenant)

    # The guess the rate limits' round trip confirmed is the tenant authenticated: not built again.
    assert (response.status_code, built) == (200, [tenant.pk])


def test_a_chat_turn_reads_no_setting_that_is_not_set(client, tenant, monkeypatch):
    assert _chat(client, tenant, "warm-up", "Hello").status_code == 200
    missing: list[str] = []
    lookup = LazySettings.__getattr__

    def recording(self: LazySettings, name: str) -> Any:
        try:
            return lookup(self, name)
        except AttributeError:
            missing.append(name)
            raise

    monkeypatch.setattr(LazySettings, "__getattr__", recording)

    response = _chat(client, tenant, "visitor-7", "Hello again")

    # A setting read with a default but not set raises (and drops) an AttributeError on every read.
    assert (response.status_code, missing) == (200, [])
