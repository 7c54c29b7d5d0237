"""Advisory locks: one worker at a time on a named piece of work, with no transaction open.

A session-level PostgreSQL advisory lock is held by the connection, not by a transaction, so the holder may
call out (a channel, Stripe) while it is held and commit as often as it needs; PostgreSQL releases it if the
process dies. Used where a row lock would have to span a network call.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

from django.db import DatabaseError, connection


def _key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def advisory_lock(name: str) -> Iterator[bool]:
    """Try to take the lock named `name` (never waits); yields whether it was taken, releases it on exit."""
    key = _key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
