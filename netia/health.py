"""Health of the components the platform needs: database, cache and the Celery broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from kombu import Connection

logger = structlog.get_logger(__name__)


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def _check_cache() -> dict[str, Any]:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=5)
    value = cache.get(key)
    cache.delete(key)
    if value != "ok":
        raise RuntimeError("cache did not return the value it was given")
    return {"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def _check_broker() -> dict[str, Any]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"mode": "eager"}
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {"mode": "broker"}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": _check_database,
    "cache": _check_cache,
    "broker": _check_broker,
}


def health_report() -> tuple[bool, dict[str, Any]]:
    """Run every check; return (healthy, report). A failing check names its error class, nothing more."""
    components: dict[str, Any] = {}
    failing: list[str] = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            details = check()
        except Exception as exc:
            logger.warning("health_check_failed", component=name, error=type(exc).__name__)
            failing.append(name)
            components[name] = {"status": "error", "error": type(exc).__name__}
        else:
            components[name] = {"status": "ok", **details}
        components[name]["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    report = {"status": "ok" if not failing else "unhealthy", "failing": failing, "components": components}
    return not failing, report
