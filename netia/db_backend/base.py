"""django-tenants' schema-aware PostgreSQL backend, issuing `SET search_path` only when the path changes.

django-tenants re-issues `SET search_path` before every statement unless `TENANT_LIMIT_SET_CALLS` is on, and
with it on still forgets the session's path on every `set_tenant()`, so each request paid two (start in public,
enter the tenant) and every `tenant_context` exit one more. This wrapper remembers what the database session
really has: a switch to the path already in force issues nothing, any other path is set once before the next
statement. What the session has is forgotten whenever it may have been undone or lost: a rollback or a
rollback to a savepoint (a `SET` inside an aborted transaction is reverted; django-tenants clears it there),
a failed `SET`, a closed connection, and a new connection (`connect()`). The health check of a reused
connection (CONN_HEALTH_CHECKS) costs no round trip while the server has said nothing (`is_usable`).

The session-level `SET` needs a session of its own: behind PgBouncer that means session pooling (see
docs/scaling.md), never transaction pooling.
"""

from __future__ import annotations

import select
from typing import Any

from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper


class DatabaseWrapper(TenantDatabaseWrapper):
    # What the database session has (None: unknown), apart from django-tenants' "set already" marker, which
    # every set_tenant() clears: A -> public -> A with no statement in between then issues nothing.
    _session_search_path: list[str] | None = None

    def _forget_session_path(self) -> None:
        self._session_search_path = None

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
        super()._handle_search_path(cursor)
        # After a successful SET (or none needed) this is the session's path; after a failed one, None.
        self._session_search_path = self.search_path_set_schemas
