"""django-prometheus' PostgreSQL backend, counting every statement with the metrics' labelled children resolved once
per connection instead of on each statement.

The metrics are django-prometheus' own (`django_db_execute_total`, `django_db_execute_many_total`,
`django_db_query_duration_seconds`, `django_db_errors_total`, `django_db_new_connections_total`, ...), with the same
labels and meaning; only the per-statement bookkeeping is lighter (its cursor looked each child up by label on every
statement and built two context managers around it), about half of what counting cost the webhook ack's statements.
"""

from __future__ import annotations

from timeit import default_timer
from typing import Any

from django.db.backends.postgresql import base as django_base
from django_prometheus.db import errors_total, execute_many_total, execute_total, query_duration_seconds
from django_prometheus.db.backends.postgresql import base as prometheus_base


def counting_cursor(cursor_class: type, alias: str, vendor: str) -> type:
    """A subclass of psycopg's `cursor_class` counting and timing each statement (django-prometheus' metrics)."""
    executed = execute_total.labels(alias, vendor)
    executed_in_bulk = execute_many_total.labels(alias, vendor)
    duration = query_duration_seconds.labels(alias, vendor)

    class CountingCursor(cursor_class):
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            executed.inc()
            started = default_timer()
            try:
                return super().execute(*args, **kwargs)
            except BaseException as error:
                errors_total.labels(alias, vendor, type(error).__name__).inc()
                raise
            finally:
                duration.observe(max(default_timer() - started, 0))

        def executemany(self, query: Any, param_list: Any, *args: Any, **kwargs: Any) -> Any:
            executed.inc(len(param_list))
            executed_in_bulk.inc(len(param_list))
            started = default_timer()
            try:
                return super().executemany(query, param_list, *args, **kwargs)
            except BaseException as error:
                errors_total.labels(alias, vendor, type(error).__name__).inc()
                raise
            finally:
                duration.observe(max(default_timer() - started, 0))

    return CountingCursor


class DatabaseWrapper(prometheus_base.DatabaseWrapper):
    """django-prometheus' wrapper (connections counted as before), with `counting_cursor` as psycopg's cursor."""

    def get_connection_params(self) -> dict[str, Any]:
        conn_params: dict[str, Any] = django_base.DatabaseWrapper.get_connection_params(self)
        conn_params["cursor_factory"] = counting_cursor(conn_params["cursor_factory"], self.alias, self.vendor)
        return conn_params
