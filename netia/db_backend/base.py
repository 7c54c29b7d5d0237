"""django-tenants' schema-aware PostgreSQL backend, issuing `SET search_path` only when the path changes.

django-tenants re-issues `SET search_path` before every statement unless `TENANT_LIMIT_SET_CALLS` is on, and
with it on still forgets the session's path on every `set_tenant()`, so each request paid two (start in public,
enter the tenant) and every `tenant_context` exit one more. This wrapper remembers what the database session
really has: a switch to the path already in force issues nothing, any other path is set once before the next
statement. What the session has is forgotten whenever it may have been undone or lost: a rollback or a
rollback to a savepoint (a `SET` inside an aborted transaction is reverted; django-tenants clears it there),
a failed `SET`, a closed connection, and a new connection (`connect()`). The health check of a reused
connection (CONN_HEALTH_CHECKS) costs no round trip while the server has said nothing (`is_usable`).

The `SET` costs no round trip of its own: it rides with the session's next statement, sent as one query
("SET search_path = …; <statement>", PostgreSQL's simple query protocol, which runs them in order and stops at
the first error), the cursor then positioned on the statement's result. A statement that cannot carry it (not
a SELECT, INSERT, UPDATE, DELETE or WITH, which may all run in the implicit transaction block of such a query,
or sent with the extended protocol: server-side binding, a pipeline, executemany, a named cursor) sends it
first, on its own, as before (unseen by Django's query log, which logs the query a cursor wrapper sent);
transaction control (SAVEPOINT, RELEASE, ROLLBACK …) leaves it waiting. Until then the `SET` waits on the
session (`path_riding_cursor`), so no statement of the session runs before it, whichever cursor sends it; a
statement that fails puts it back for the next one.

The session-level `SET` needs a session of its own: behind PgBouncer that means session pooling (see
docs/scaling.md), never transaction pooling.
"""

from __future__ import annotations

import re
import select
from typing import Any

from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from psycopg import ClientCursor

# Statements that may run in a transaction block, so in the implicit one of a query of several (a CREATE
# DATABASE or a VACUUM may not: their SET goes on its own).
_CARRIER = re.compile(r"\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
# Transaction control, which reads no name on the path: the SET waits on for a statement that does.
_PATH_FREE = re.compile(r"\s*(?:SAVEPOINT|RELEASE|ROLLBACK|BEGIN|START TRANSACTION|COMMIT|END)\b", re.IGNORECASE)
# The psycopg connection's attribute holding the `SET search_path` its next statement sends first.
_PENDING = "_netia_search_path_pending"


def path_riding_cursor(cursor_class: type) -> type:
    """A subclass of psycopg's `cursor_class` (the backend's cursor factory) whose statements send the session's
    pending `SET search_path` first: in the same query when they can carry it, else just before."""
    # Client-side binding sends a statement with the simple query protocol, which takes several.
    carries = issubclass(cursor_class, ClientCursor)

    class PathRidingCursor(cursor_class):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            session = self._conn
            pending = getattr(session, _PENDING, None)
            if pending is None or (isinstance(query, str) and _PATH_FREE.match(query)):
                return super().execute(query, params, **kwargs)
            setattr(session, _PENDING, None)
            if not (
                carries and isinstance(query, str) and not kwargs and not session._pipeline and _CARRIER.match(query)
            ):
                self._send(pending)
                return super().execute(query, params, **kwargs)
            try:
                super().execute(f"{pending}; {query}", params)
            except BaseException:
                # The SET may not have run (its own error, or the statement's undid it): it goes with the next.
                _put_back(session, pending)
                raise
            self.nextset()  # to the statement's own result
            return self

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            self._send_pending()
            return super().executemany(query, params_seq, **kwargs)

        def _send_pending(self) -> None:
            pending = getattr(self._conn, _PENDING, None)
            if pending is not None:
                setattr(self._conn, _PENDING, None)
                self._send(pending)

        def _send(self, pending: str) -> None:
            """The SET on its own (never prepared), put back if it fails."""
            try:
                super().execute(pending, prepare=False)
            except BaseException:
                _put_back(self._conn, pending)
                raise

    return PathRidingCursor


def _put_back(session: Any, pending: str) -> None:
    if getattr(session, _PENDING, None) is None:  # unless a newer path is already waiting
        setattr(session, _PENDING, pending)


class _Deferred:
    """What django-tenants sets the path with, instead of a cursor: its `SET` waits for the session's next
    statement."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def execute(self, sql: str) -> None:
        setattr(self.session, _PENDING, sql)

    def close(self) -> None:
        pass


class DatabaseWrapper(TenantDatabaseWrapper):
    # What the database session has (None: unknown), apart from django-tenants' "set already" marker, which
    # every set_tenant() clears: A -> public -> A with no statement in between then issues nothing.
    _session_search_path: list[str] | None = None

    def _forget_session_path(self) -> None:
        self._session_search_path = None

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params["cursor_factory"] = path_riding_cursor(params["cursor_factory"])
        return params

    def is_usable(self) -> bool:
        """CONN_HEALTH_CHECKS' test of a reused connection, without a round trip while the session is quiet.

        A server that ends the session (a restart, `pg_terminate_backend`, an idle timeout) sends its error
        and closes the socket, which then reads as ready: only then (or if anything else is waiting) is the
        connection asked with Django's `SELECT 1`. A quiet socket is a live session, as the next query finds.
        """
        if self.connection is None or self.connection.closed:
            return False
        # poll, not select: select() refuses descriptors above 1023, which would make every reuse reconnect.
        poller = select.poll()
        try:
            poller.register(self.connection.fileno(), select.POLLIN)
            ready = poller.poll(0)
        except (OSError, ValueError):
            return False
        return True if not ready else bool(super().is_usable())

    def connect(self) -> None:
        # A new session starts with the server's default path, whatever the previous one had.
        self._forget_session_path()
        self.search_path_set_schemas = None
        super().connect()

    def close(self) -> None:
        self._forget_session_path()
        super().close()

    def rollback(self) -> None:
        self._forget_session_path()
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        try:
            super().savepoint_rollback(sid)
        finally:
            self._forget_session_path()

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        if self._session_search_path is not None and self._get_cursor_search_paths() == self._session_search_path:
            self.search_path_set_schemas = self._session_search_path  # type: ignore[assignment]

    def _handle_search_path(self, cursor: Any = None) -> None:
        if self._setting_search_path:
            return
        # Given the new cursor of a statement to come, the SET waits for the session's next statement; without
        # one (a named cursor's), django-tenants sends it now on a cursor of its own (after any waiting one).
        super()._handle_search_path(_Deferred(self.connection) if cursor is not None else None)
        # After a SET sent or waiting (or none needed) this is the session's path; after a failed one, None.
        self._session_search_path = self.search_path_set_schemas
