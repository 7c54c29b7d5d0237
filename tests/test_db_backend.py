"""The database backend: the health check of a reused connection (CONN_HEALTH_CHECKS), and a tenant's
search_path sent with the session's next statement."""

from __future__ import annotations

import time

import pytest
from django.db import DataError, connection, connections
from django.test.utils import CaptureQueriesContext
from django_prometheus.db import execute_total

from chat.models import Conversation
from netia.tenancy import tenant_connection, use_public_schema
from tenants.models import Tenant


@pytest.mark.django_db(transaction=True)
def test_a_session_the_server_ended_is_not_usable_and_is_replaced() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    assert connection.is_usable()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    for _ in range(100):  # the server's goodbye reaches the socket within milliseconds
        if not connection.is_usable():
            break
        time.sleep(0.02)
    else:
        pytest.fail("a terminated session still counts as usable")
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


@pytest.mark.django_db(transaction=True)
def test_a_quiet_session_is_usable_without_a_statement() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    raw = connection.connection
    before = raw.pgconn.transaction_status, raw.info.backend_pid
    executed: list[str] = []
    original = raw.execute

    def spy(query: object, *args: object, **kwargs: object) -> object:
        executed.append(str(query))
        return original(query, *args, **kwargs)

    raw.execute = spy
    try:
        assert connection.is_usable()
    finally:
        del raw.execute
    assert executed == []
    assert (raw.pgconn.transaction_status, raw.info.backend_pid) == before


def _sent() -> float:
    """Statements the psycopg cursors of the default connection sent so far (one query each)."""
    return float(execute_total.labels(connection.alias, connection.vendor)._value.get())


def _left_in_public() -> None:
    use_public_schema()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_a_tenant_switch_sends_its_search_path_in_the_next_statement_s_query(tenant: Tenant) -> None:
    _left_in_public()
    tenant_connection().set_tenant(tenant)
    before = _sent()
    with CaptureQueriesContext(connection) as captured, connection.cursor() as cursor:
        cursor.execute("SELECT current_schema(), %s", ["its own result"])
        row = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM chat_conversation")  # a tenant's table, found on the path

    assert row == (tenant.schema_name, "its own result")
    assert _sent() - before == 2
    assert [q["sql"] for q in captured.captured_queries] == [
        f'SET search_path = "{tenant.schema_name}","public"; SELECT current_schema(), \'its own result\'',
        "SELECT count(*) FROM chat_conversation",
    ]


def test_a_statement_that_cannot_carry_the_search_path_is_sent_after_it(tenant: Tenant) -> None:
    _left_in_public()
    tenant_connection().set_tenant(tenant)
    before = _sent()
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")  # not a SELECT, INSERT, UPDATE, DELETE or WITH: the SET goes first
        shown = cursor.fetchone()[0]
        cursor.executemany("UPDATE chat_conversation SET status = status WHERE id = %s", [[1], [2]])

    assert shown == f"{tenant.schema_name}, public"
    assert _sent() - before == 1 + 1 + 2


def test_an_executemany_sends_the_search_path_first(tenant: Tenant) -> None:
    _left_in_public()
    tenant_connection().set_tenant(tenant)
    with connection.cursor() as cursor:
        # chat_conversation exists only in tenants' schemas: in public this fails.
        cursor.executemany("UPDATE chat_conversation SET status = status WHERE id = %s", [[1], [2]])
        cursor.execute("SELECT current_schema()")
        assert cursor.fetchone()[0] == tenant.schema_name


@pytest.mark.django_db(transaction=True)
def test_a_statement_that_fails_leaves_the_search_path_for_the_next_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA IF NOT EXISTS "netia_path_test"')
    try:
        _left_in_public()
        tenant_connection().set_schema("netia_path_test")
        with connection.cursor() as cursor:
            # Autocommit: the query's SET is undone with the statement that failed in it.
            with pytest.raises(DataError):
                cursor.execute("SELECT 1 / %s", [0])
            cursor.execute("SELECT current_schema()")
            assert cursor.fetchone()[0] == "netia_path_test"
    finally:
        use_public_schema()
        with connection.cursor() as cursor:
            cursor.execute('DROP SCHEMA IF EXISTS "netia_path_test"')


def test_a_named_cursor_after_a_tenant_switch_reads_the_tenant_s_tables(tenant: Tenant) -> None:
    """QuerySet.iterator() reads through a server-side (named) cursor, which cannot carry the SET: it is sent
    first, on its own."""
    _left_in_public()
    tenant_connection().set_tenant(tenant)
    Conversation.objects.create(channel=Conversation.Channel.API, session_id="named-cursor")

    _left_in_public()
    tenant_connection().set_tenant(tenant)
    sessions = [c.session_id for c in Conversation.objects.filter(session_id="named-cursor").iterator(chunk_size=10)]

    assert sessions == ["named-cursor"]
