"""Statements bound and prepared server-side: planned once per database session, then only executed.

Django's psycopg backend binds parameters client-side and never prepares (psycopg's `prepare_threshold` is
None), so PostgreSQL parses and plans every statement anew. For a statement whose planning costs far more than
its execution (the knowledge retrieval: ~1.9 of its ~2.5 ms of backend CPU were planning), `prepared_rows`
executes it with its parameters bound server-side, through psycopg's `RawCursor` (PostgreSQL's own `$1`
placeholders, so psycopg parses no query text), as a protocol-level prepared statement: psycopg prepares it on
the first execution in the session and keeps up to `prepared_max` (100) per connection, least recently used
first out (deallocated). It is prepared only here, explicitly: psycopg's automatic preparing stays off for
every other statement. A psycopg rollback deallocates them all (psycopg's caution); they are prepared again on
next use, and a new connection (CONN_MAX_AGE, a reconnect) starts without any.

PostgreSQL re-plans a cached plan whenever `search_path` differs from the one it was planned under, so a
statement meant to be reused in a process serving many tenants names its tables with their schema (one
statement per schema): it then always runs under its own tenant's path.

`DATABASE_PREPARED_STATEMENTS=false` (settings) executes the same statements unnamed (still bound
server-side), for a connection pooler that keeps no prepared statements across a client's statements
(PgBouncer before 1.21, or without `max_prepared_statements`, in transaction pooling; see docs/scaling.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any
from weakref import WeakSet

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from psycopg import Connection, RawCursor
from psycopg.pq import TransactionStatus
from psycopg.sql import Literal

from netia.db_backend.base import path_riding_cursor
from netia.db_metrics.base import counting_cursor

# psycopg prepares a statement only while its connection's threshold is not None (Django sets None); this
# one (never reached: the statement asks to be prepared) is set only for the prepared statement's execution.
_EXPLICIT_ONLY = 1 << 62


class _PreparingCursor(RawCursor[Any]):
    """psycopg's RawCursor executing each statement prepared (or unnamed with DATABASE_PREPARED_STATEMENTS off)."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        if prepare is False or not settings.DATABASE_PREPARED_STATEMENTS:
            return super().execute(query, params, prepare=False, binary=binary)
        conn = self.connection
        if conn.prepare_threshold is not None:
            return super().execute(query, params, prepare=True, binary=binary)
        conn.prepare_threshold = _EXPLICIT_ONLY
        try:
            return super().execute(query, params, prepare=True, binary=binary)
        finally:
            conn.prepare_threshold = None


@cache
def _cursor_class(alias: str, vendor: str) -> type[_PreparingCursor]:
    # Counted in django-prometheus' statement metrics like every other statement (netia.db_metrics), after the
    # session's pending search_path (netia.db_backend), sent first on its own when there is one.
    cursor_class: type[_PreparingCursor] = path_riding_cursor(counting_cursor(_PreparingCursor, alias, vendor))
    return cursor_class


# The sessions told to plan prepared statements generically (psycopg connections; a new one starts without).
_generic_sessions: WeakSet[Connection[Any]] = WeakSet()


def _plan_generically(cursor: Any, session: Connection[Any]) -> None:
    """Have the session plan each prepared statement once, generically, when it is not in a transaction.

    PostgreSQL's default (`plan_cache_mode = auto`) plans the first five executions for their values and only
    then, if no dearer, keeps a generic plan: six plannings per statement, per connection and schema. The
    values change nothing worth planning for here (the GIN index scan is the plan for any tsquery), so the
    first execution's generic plan serves them all. Set outside a transaction only (a rollback would undo
    it); until then, and for a session it cannot be set on, `auto` plans as before.
    """
    if session in _generic_sessions or not session.autocommit:
        return
    if session.info.transaction_status == TransactionStatus.IDLE:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        _generic_sessions.add(session)


_PLACEHOLDER = re.compile(r"\$([0-9]+)")


class _LoggedCursor(CursorDebugWrapper):
    """Django's query log (DEBUG, tests' CaptureQueriesContext) with the statement's values written in.

    (psycopg keeps no text of a prepared statement's execution for Django's `last_executed_query`.)
    """

    def execute(self, sql: Any, params: Any = None) -> Any:
        context = self.cursor.connection
        logged = _PLACEHOLDER.sub(lambda m: Literal(params[int(m[1]) - 1]).as_string(context), sql)
        with self.debug_sql(logged, params):
            return CursorWrapper.execute(self, sql, params)


def prepared_rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of `sql` (placeholders $1, $2 … for `params`), executed as a prepared statement.

    Executed through Django's cursor wrapper (its execute wrappers, query log and error translation see it
    as any statement) on the current connection, under the current tenant's `search_path` (a pending `SET` is
    sent first, on its own: netia.db_backend).
    """
    db = connections[DEFAULT_DB_ALIAS]  # `connection`, looked up once
    with db.cursor() as cursor:  # connects, and has the tenant's search_path set if it is not yet
        session = cursor.cursor.connection
        if settings.DATABASE_PREPARED_STATEMENTS:
            _plan_generically(cursor, session)
        raw = _cursor_class(db.alias, db.vendor)(session)
        with raw:
            wrapped = _LoggedCursor(raw, db) if db.queries_logged else CursorWrapper(raw, db)
            wrapped.execute(sql, params)
            return wrapped.fetchall()
