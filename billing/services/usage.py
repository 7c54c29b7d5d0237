"""Usage metering: AI replies counted per tenant and billing period; the owner warned at 80 % and 100 %."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.models import BillingNotification, Plan, UsagePeriod
from billing.selectors import BillingState, billing_account_get, billing_period_for, billing_state_get
from billing.services.notifications import notify_once
from tenants.models import Tenant

# Usage emails: (kind, percent of the limit), highest first; one email per period and limit each.
_USAGE_THRESHOLDS = (
    (BillingNotification.Kind.USAGE_LIMIT, 100),
    (BillingNotification.Kind.USAGE_WARNING, 80),
)


def current_period(*, tenant: Tenant, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The tenant's current billing period: the live Stripe subscription's, else the calendar month (UTC)."""
    return billing_period_for(account=billing_account_get(tenant=tenant), now=now)


@transaction.atomic(savepoint=False)
def usage_ai_reply_record(*, tenant: Tenant, state: BillingState | None = None) -> int:
    """Count one AI reply for the tenant's current period; returns the new count. Safe under concurrency.

    The increment is one UPDATE (row lock held to the end of the caller's transaction, so the count read
    back is exact); the period's first reply inserts the row, and a concurrent insert loses the unique race
    and increments instead. Crossing 80% / 100% of the plan's limit queues the owner's email, once.
    `state`: the billing state this request already read (else read from the version-keyed cache).
    """
    state = state or billing_state_get(tenant=tenant)
    start, end = billing_period_for(account=state.account)
    count = _increment(tenant=tenant, period_start=start)
    if count is None:
        try:
            with transaction.atomic():
                UsagePeriod.objects.create(tenant=tenant, period_start=start, period_end=end, ai_replies=1)
            count = 1
        except IntegrityError:  # another worker created the period first
            count = _increment(tenant=tenant, period_start=start)
    assert count is not None  # noqa: S101 - the row exists by now
    _usage_notifications_queue(tenant=tenant, plan=state.plan, period_start=start, period_end=end, count=count)
    return count


def _increment(*, tenant: Tenant, period_start: datetime) -> int | None:
    """+1 on the period's row, returning the new count (one statement); None when the row does not exist."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{UsagePeriod._meta.db_table}" SET ai_replies = ai_replies + 1, updated_at = %s '  # noqa: S608
            "WHERE tenant_id = %s AND period_start = %s RETURNING ai_replies",
            [timezone.now(), tenant.pk, period_start],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _usage_notifications_queue(
    *, tenant: Tenant, plan: Plan, period_start: datetime, period_end: datetime, count: int
) -> None:
    limit = plan.ai_replies_per_month
    if not limit:
        return
    for kind, percent in _USAGE_THRESHOLDS:
        if count * 100 >= limit * percent:
            notify_once(
                tenant=tenant,
                kind=kind,
                # Per period and limit: an upgrade mid-period warns again about the new limit.
                key=f"{period_start.isoformat()}/{limit}",
                context={
                    "plan": plan.name,
                    "limit": limit,
                    "used": count,
                    "percent": percent,
                    "period_end": period_end.isoformat(),
                },
            )
            return
