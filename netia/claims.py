"""Claims: take a row for one piece of outside work (an email, a call) without holding a lock while doing it.

The outbox pattern's first step for work that is not a channel message: one conditional UPDATE marks the
row as being worked on and commits, the work is done with no transaction open, then the row is marked done.
A claim expires after `lease` seconds, so the work of a worker that died is taken again (at least once; the
outside call must tolerate a repeat, e.g. an email's fixed Message-ID).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.db.models import Model, Q, QuerySet
from django.utils import timezone

M = TypeVar("M", bound=Model)


def claim(rows: QuerySet[M], *, claimed_field: str, done_field: str, lease: float) -> bool:
    """Claim the rows that are neither done nor claimed within the last `lease` seconds; True if any were."""
    now = timezone.now()
    free = Q(**{f"{claimed_field}__isnull": True}) | Q(**{f"{claimed_field}__lt": now - timedelta(seconds=lease)})
    return rows.filter(free, **{f"{done_field}__isnull": True}).update(**{claimed_field: now}) > 0


def perform(rows: QuerySet[M], work: Callable[[], object], *, claimed_field: str, done_field: str) -> None:
    """Do the claimed work (no transaction open), then mark it done; an OSError (a mail server, a network)
    gives the claim back, so a retry may take it at once, and propagates."""
    try:
        work()
    except OSError:
        release(rows, claimed_field=claimed_field)
        raise
    complete(rows, done_field=done_field)


def release(rows: QuerySet[M], *, claimed_field: str) -> None:
    """Give a claim back after the work failed, so a retry may take it at once."""
    rows.update(**{claimed_field: None})


def complete(rows: QuerySet[M], *, done_field: str) -> None:
    """Mark the claimed work done."""
    rows.update(**{done_field: timezone.now()})


def unclaimed(rows: QuerySet[M], *, claimed_field: str, done_field: str, lease: float) -> QuerySet[M]:
    """The rows still to do that no live claim covers (what a sweep queues again)."""
    stale = timezone.now() - timedelta(seconds=lease)
    return rows.filter(Q(**{f"{claimed_field}__isnull": True}) | Q(**{f"{claimed_field}__lt": stale})).filter(
        **{f"{done_field}__isnull": True}
    )
