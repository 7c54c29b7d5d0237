"""Set up Django for a benchmark on its own database, so runs never touch the development data."""

from __future__ import annotations

import os


def setup(database_name: str) -> None:
    """Point DATABASE_URL (or the embedded server) at `database_name`, then django.setup()."""
    url = os.environ.get("DATABASE_URL", "")
    if url:
        base, _, _ = url.rpartition("/")
        os.environ["DATABASE_URL"] = f"{base}/{database_name}"
        _create_database(os.environ["DATABASE_URL"], database_name)
    else:
        os.environ["NETIA_EMBEDDED_DB_NAME"] = database_name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "netia.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _create_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    admin_url = url.rpartition("/")[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
