"""Writes for billing: usage metering."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import UsagePeriod
from tenants.models import Tenant


def current_period(*, tenant: Tenant, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The tenant's current billing period: the calendar month (UTC)."""
    now = now or timezone.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def usage_ai_reply_record(*, tenant: Tenant) -> int:
    """Count one AI reply for the tenant's current period; returns the new count. Safe under concurrency."""
    start, end = current_period(tenant=tenant)
    updated = UsagePeriod.objects.filter(tenant=tenant, period_start=start).update(ai_replies=F("ai_replies") + 1)
    if not updated:
        try:
            with transaction.atomic():
                UsagePeriod.objects.create(tenant=tenant, period_start=start, period_end=end, ai_replies=1)
        except IntegrityError:  # another worker created the period first
            UsagePeriod.objects.filter(tenant=tenant, period_start=start).update(ai_replies=F("ai_replies") + 1)
    return UsagePeriod.objects.get(tenant=tenant, period_start=start).ai_replies
