"""What the bot did over the last 7, 30 or 90 days: one selector for the portal's overview and the API.

Runs in the tenant's schema. Days are the bot's local days (its configured time zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Aggregate, Count, F, FloatField, Func, Min, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.selectors import usage_summary_get
from chat.models import Conversation, Lead, Message
from chat.selectors import bot_configuration_get
from netia.errors import ValidationFailed
from tenants.models import Tenant

PERIODS = (7, 30, 90)
TOP_INTENTS = 6


class _Median(Aggregate):
    """PostgreSQL's continuous median of the expression."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


class _Seconds(Func):
    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class Analytics:
    """The figures of one period; shares and the median are None when there is nothing to measure."""

    days: int
    start: datetime
    end: datetime
    timezone: str
    conversations: int
    conversations_per_day: list[DayCount]
    answered_by_bot: int  # conversations never handed to a human
    answered_by_bot_share: float | None
    handoffs: int
    handoffs_by_reason: list[tuple[str, int]]
    new_leads: int
    top_intents: list[tuple[str, int]]  # from the bot's replies
    first_reply_median_seconds: float | None
    ai_replies_used: int  # in the current billing period
    ai_replies_limit: int | None  # None: unlimited
    billing_period_end: datetime


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def analytics_get(*, tenant: Tenant, days: int = 30, now: datetime | None = None) -> Analytics:
    """The tenant's figures for the last `days` local days (today included): 7, 30 or 90."""
    if days not in PERIODS:
        raise ValidationFailed("Choose a period of 7, 30 or 90 days.", extra={"field": "days", "allowed": PERIODS})
    now = now or timezone.now()
    tz_name = bot_configuration_get().timezone
    zone = _zone(tz_name)
    first_day = now.astimezone(zone).date() - timedelta(days=days - 1)
    start = datetime.combine(first_day, time.min, tzinfo=zone)
    in_period = Q(created_at__gte=start, created_at__lte=now)

    conversations = Conversation.objects.filter(in_period)
    totals = conversations.aggregate(
        total=Count("id"), by_bot=Count("id", filter=Q(handed_off_at__isnull=True) & ~Q(status="human"))
    )
    per_day = dict(
        conversations.annotate(day=TruncDate("created_at", tzinfo=zone))
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    handoffs = list(
        Conversation.objects.filter(handed_off_at__gte=start, handed_off_at__lte=now)
        .exclude(handoff_reason="")
        .values_list("handoff_reason")
        .annotate(n=Count("id"))
        .values_list("handoff_reason", "n")
        .order_by("-n", "handoff_reason")
    )
    intents = list(
        Message.objects.filter(in_period, role=Message.Role.BOT)
        .exclude(intent="")
        .values_list("intent")
        .annotate(n=Count("id"))
        .values_list("intent", "n")
        .order_by("-n", "intent")[:TOP_INTENTS]
    )
    visitor_first = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.VISITOR)
    bot_first = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.BOT, private=False)
    median = (
        conversations.annotate(
            asked=Subquery(visitor_first.values("conversation").annotate(t=Min("created_at")).values("t")),
            answered=Subquery(bot_first.values("conversation").annotate(t=Min("created_at")).values("t")),
        )
        .filter(asked__isnull=False, answered__isnull=False)
        .aggregate(median=_Median(_Seconds(F("answered") - F("asked"))))["median"]
    )
    usage = usage_summary_get(tenant=tenant, now=now)
    total = totals["total"]
    return Analytics(
        days=days,
        start=start,
        end=now,
        timezone=tz_name,
        conversations=total,
        conversations_per_day=[
            DayCount(day=first_day + timedelta(days=i), count=per_day.get(first_day + timedelta(days=i), 0))
            for i in range(days)
        ],
        answered_by_bot=totals["by_bot"],
        answered_by_bot_share=totals["by_bot"] / total if total else None,
        handoffs=sum(n for _, n in handoffs),
        handoffs_by_reason=handoffs,
        new_leads=Lead.objects.filter(in_period).count(),
        top_intents=intents,
        first_reply_median_seconds=max(0.0, median) if median is not None else None,
        ai_replies_used=usage.ai_replies,
        ai_replies_limit=usage.ai_replies_limit,
        billing_period_end=usage.period_end,
    )
