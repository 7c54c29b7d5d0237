"""Usage metering: AI replies counted per tenant and billing period; the owner warned at 80 % and 100 %."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection
from django.utils import timezone

from billing.models import BillingNotification, UsagePeriod
from billing.selectors import BillingState, billing_account_get, billing_period_for, billing_state_get
from billing.services.notifications import SEND_TASK
from netia import dispatch
from tenants.models import Tenant

# Usage emails: (kind, percent of the limit), highest first; one email per period and limit each.
_USAGE_THRESHOLDS = (
    (BillingNotification.Kind.USAGE_LIMIT, 100),
    (BillingNotification.Kind.USAGE_WARNING, 80),
)

# The names the counting statements' results go by (common table expressions; see `UsageCount`).
USAGE_CTE, NOTICE_CTE = "usage_counted", "usage_notice"


def current_period(*, tenant: Tenant, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The tenant's current billing period: the live Stripe subscription's, else the calendar month (UTC)."""
    return billing_period_for(account=billing_account_get(tenant=tenant), now=now)


def _columns(model: Any, names: Sequence[str]) -> str:
    return ", ".join(connection.ops.quote_name(model._meta.get_field(n).column) for n in names)


@lru_cache(maxsize=8)
def _count_sql(source: str) -> str:
    """+1 on the period's row, inserting it for the period's first reply (an upsert: exact under concurrency,
    the row locked to the end of the transaction); one row per row of `source` (a FROM clause, or none)."""
    table = connection.ops.quote_name(UsagePeriod._meta.db_table)
    columns = _columns(UsagePeriod, ["tenant", "period_start", "period_end", "ai_replies", "updated_at"])
    conflict = _columns(UsagePeriod, ["tenant", "period_start"])
    return (
        f"INSERT INTO {table} ({columns}) SELECT %s, %s, %s, 1, %s{source} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET ai_replies = {table}.ai_replies + 1, "
        "updated_at = EXCLUDED.updated_at RETURNING ai_replies"
    )


@lru_cache(maxsize=1)
def _notice_sql() -> str:
    """The usage email of the highest threshold the new count reached, recorded unless it was (once per period
    and limit); `notify_once`'s row, written in the counting statement."""
    table = connection.ops.quote_name(BillingNotification._meta.db_table)
    columns = _columns(
        BillingNotification,
        ["tenant", "kind", "key", "context", "created_at", "claimed_at", "sent_at", "attempts", "error", "gave_up_at"],
    )
    conflict = _columns(BillingNotification, ["tenant", "kind", "key"])
    # Each threshold as the fewest replies that reach it (a parameter), highest first.
    kind = " ".join(f"WHEN ai_replies >= %s THEN '{k.value}'" for k, _ in _USAGE_THRESHOLDS)
    percent = " ".join(f"WHEN ai_replies >= %s THEN {p}" for _, p in _USAGE_THRESHOLDS)
    return (
        f"INSERT INTO {table} ({columns}) SELECT %s, CASE {kind} END, %s, "  # noqa: S608 - names from metadata
        "jsonb_build_object('plan', %s::text, 'limit', %s::integer, 'used', ai_replies, "
        f"'percent', CASE {percent} END, 'period_end', %s::text), %s, NULL, NULL, 0, '', NULL "
        f"FROM {USAGE_CTE} WHERE ai_replies >= %s ON CONFLICT ({conflict}) DO NOTHING RETURNING id"
    )


@dataclass(frozen=True)
class UsageCount:
    """One AI reply to count: the statements that count it, as common table expressions (name, SQL, parameters)
    for a caller's statement (`USAGE_CTE` returns the new count, `NOTICE_CTE`, when there, the id of a usage
    email it recorded), then `usage_counted` with what they returned."""

    statements: list[tuple[str, str, list[Any]]]
    # The email's statement and parameters when the plan has a limit (the SQL reads the count from USAGE_CTE).
    notice: tuple[str, list[Any]] | None = None
    # The fewest replies that reach a threshold (the lowest).
    threshold: int | None = None


def usage_count(
    *, tenant: Tenant, state: BillingState | None = None, source: str = "", used: int | None = None
) -> UsageCount:
    """The statements counting one AI reply for the tenant's current period, and recording the owner's email
    when the new count reaches 80% or 100% of the plan's limit (once per period and limit).

    `source`: a FROM clause of the caller's statement (" FROM ids"): one reply counted per row it has (none:
    one). `state`: the billing state this request already read (else read from the version-keyed cache).
    `used`: the period's count this request read before (the bot-access decision), if it did: while one more
    reply cannot reach a threshold, the email's statement is left out (planning it costs the database more
    than counting), and `usage_counted` records it alone if concurrent replies made the count reach one.
    """
    state = state or billing_state_get(tenant=tenant)
    start, end = billing_period_for(account=state.account)
    now = timezone.now()
    statements = [(USAGE_CTE, _count_sql(source), [tenant.pk, start, end, now])]
    limit = state.plan.ai_replies_per_month
    if not limit:
        return UsageCount(statements=statements)
    # count * 100 >= limit * percent, as the fewest replies that reach each threshold.
    reached = [-(-limit * percent // 100) for _, percent in _USAGE_THRESHOLDS]
    key = f"{start.isoformat()}/{limit}"  # per period and limit: an upgrade mid-period warns again
    params = [tenant.pk, *reached, key, state.plan.name, limit, *reached, end.isoformat(), now, reached[-1]]
    if used is None or used + 1 >= reached[-1]:
        statements.append((NOTICE_CTE, _notice_sql(), params))
        return UsageCount(statements=statements, threshold=reached[-1])
    return UsageCount(statements=statements, notice=(_notice_sql(), params), threshold=reached[-1])


def usage_counted(usage: UsageCount, *, results: Sequence[Any]) -> int:
    """After the statements of `usage` ran and returned `results` (the new count, then the email's id if its
    statement was there): record the email if the count reached a threshold though the statement was left out,
    queue the email recorded, if any, to be sent once the transaction commits; the new count."""
    count = int(results[0])
    notification_id = results[1] if len(results) > 1 else None
    if usage.notice is not None and usage.threshold is not None and count >= usage.threshold:
        sql, params = usage.notice
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH {USAGE_CTE} AS (SELECT %s::integer AS ai_replies), {NOTICE_CTE} AS ({sql}) "  # noqa: S608
                f"SELECT (SELECT id FROM {NOTICE_CTE})",
                [count, *params],
            )
            notification_id = cursor.fetchone()[0]
    if notification_id is not None:
        dispatch.enqueue_on_commit(SEND_TASK, notification_id=notification_id)
    return count


def usage_ai_reply_record(*, tenant: Tenant, state: BillingState | None = None, used: int | None = None) -> int:
    """Count one AI reply for the tenant's current period; returns the new count. Safe under concurrency.

    One statement (`usage_count`'s, atomic on its own): an upsert on the period's row (row lock held to the
    end of the caller's transaction, so the count it returns is exact) that also records the owner's email
    when the count crosses 80% / 100% of the plan's limit (sent after commit, once).
    `state`, `used`: what this request already read (see `usage_count`).
    """
    usage = usage_count(tenant=tenant, state=state, used=used)
    ctes = ", ".join(f"{name} AS ({sql})" for name, sql, _ in usage.statements)
    results = ", ".join(f"(SELECT * FROM {name})" for name, _, _ in usage.statements)  # noqa: S608 - our own SQL
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH {ctes} SELECT {results}",
            [p for _, _, params in usage.statements for p in params],
        )
        row = cursor.fetchone()
    return usage_counted(usage, results=row)
