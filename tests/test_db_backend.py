"""The database backend's health check of a reused connection (CONN_HEALTH_CHECKS)."""

from __future__ import annotations

import time

import pytest
from django.db import connection, connections


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
