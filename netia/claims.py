"""Claims: take a row for one piece of outside work (an email, a call) without holding a lock while doing it.

The outbox pattern's first step for work that is not a channel message: one conditional UPDATE marks the
row as being worked on and commits, the work is done with no transaction open, then the row is marked done.
A claim expires after `lease` seconds, so the work of a worker that died is taken again (at least once; the
outside call must tolerate a repeat, e.g. an email's fixed Message-ID).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from django.db import models
from django.db.models import F, Model, Q, QuerySet
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


class GiveUp(models.TextChoices):
    """Why a piece of work was given up (the sweeps stop queueing it)."""

    REFUSED = "refused", "The recipient was refused for good"
    ATTEMPTS = "attempts", "Too many failed attempts"
    AGE = "age", "Too old to send"


def permanent(error: OSError) -> bool:
    """A mail server's refusal that no retry changes: every recipient refused with a 5xx answer to RCPT.

    Any other failure, 5xx included (a wrong SMTP password's 535, a refused sender, a rejected message), is the
    platform's to fix and is retried, within the attempts and age limits: one bad setting must not give up every
    tenant's email at the first try.
    """
    return (
        isinstance(error, smtplib.SMTPRecipientsRefused)
        and bool(error.recipients)
        and all(500 <= code < 600 for code, _ in error.recipients.values())
    )


def failed(
    rows: QuerySet[M],
    error: str,
    *,
    give_up: GiveUp | None,
    max_attempts: int,
    attempts_field: str,
    gave_up_field: str,
    error_field: str,
    reason_field: str,
) -> bool:
    """Count a failed attempt at the work and record why; give it up (the sweeps stop queueing it) at once for
    the reason `give_up`, else after `max_attempts`. True if given up."""
    rows.update(**{attempts_field: F(attempts_field) + 1, error_field: error[:500]})
    if give_up is not None:
        return rows.update(**{gave_up_field: timezone.now(), reason_field: give_up}) > 0
    exhausted = rows.filter(**{f"{attempts_field}__gte": max_attempts})
    return exhausted.update(**{gave_up_field: timezone.now(), reason_field: GiveUp.ATTEMPTS}) > 0


def expired(rows: QuerySet[M], *, gave_up_field: str, reason_field: str) -> bool:
    """Give the work up as too old to do: no attempt was made, so none is counted and the last real error stays
    for staff to read. True if given up."""
    return rows.update(**{gave_up_field: timezone.now(), reason_field: GiveUp.AGE}) > 0


def too_old(since: datetime, *, max_age: float) -> bool:
    return since < timezone.now() - timedelta(seconds=max_age)
