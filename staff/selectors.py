"""Reads for staff: tenants across the platform, one tenant's overview, and platform totals."""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, tenant_context

from billing.models import BillingAccount, Plan
from billing.selectors import (
    BotAccess,
    UsageSummary,
    billing_account_get,
    bot_access_get,
    plan_default_get,
    plan_for_account,
    usage_summary_get,
)
from chat.models import Conversation, Lead, Message
from chat.selectors import conversation_list, lead_list
from tenants.models import ApiKey, Tenant, User
from webhooks.models import ConnectionCheck, CrispConnection, FailedDelivery
from webhooks.selectors import (
    ConnectionState,
    CrispConnectionState,
    crisp_connection_state_get,
    papercups_connection_state_get,
)

# Platform totals query this many tenant schemas per SQL statement (one UNION ALL each).
STATS_SCHEMAS_PER_QUERY = 100
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def tenant_list(
    *,
    status: str | None = None,
    plan: str | None = None,
    suspended: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    search: str = "",
) -> QuerySet[Tenant]:
    """Tenants matching every given filter, with their billing account and plan loaded.

    `plan` is a plan code (the default plan's code also matches tenants without a subscribed plan);
    `search` matches the name or owner email (case-insensitive, partial), the Papercups account id or the Crisp
    website id (exact).
    """
    queryset = Tenant.objects.select_related("billing_account__plan")
    if status:
        queryset = queryset.filter(subscription_status=status)
    if plan:
        condition = Q(billing_account__plan__code=plan)
        if plan == plan_default_get().code:
            condition |= Q(billing_account__plan__isnull=True)
        queryset = queryset.filter(condition)
    if suspended is not None:
        queryset = queryset.filter(suspended_at__isnull=not suspended)
    if created_after:
        queryset = queryset.filter(created_at__gte=created_after)
    if created_before:
        queryset = queryset.filter(created_at__lt=created_before)
    search = search.strip()
    if search:
        condition = Q(name__icontains=search) | Q(owner_email__icontains=search)
        with contextlib.suppress(ValueError):
            condition |= Q(papercups_account_id=uuid.UUID(search))
        condition |= Q(crisp_connection__website_id=search.lower())
        queryset = queryset.filter(condition)
    return queryset


def tenant_plan(*, tenant: Tenant, default: Plan) -> Plan:
    """The plan whose limits apply to a tenant loaded by `tenant_list` (no query)."""
    account: BillingAccount | None = getattr(tenant, "billing_account", None)
    return account.plan if account is not None and account.plan is not None else default


def tenant_member_get(*, tenant: Tenant, email: str) -> User | None:
    """The tenant's member with this email address (case-insensitive), or None."""
    return User.objects.filter(email=email.strip().lower(), memberships__tenant=tenant).first()


@dataclass(frozen=True)
class LastActivity:
    """The latest sign of life: a chat message, an API call, a member signing in (`at` is the latest)."""

    message_at: datetime | None
    api_key_used_at: datetime | None
    member_login_at: datetime | None

    @property
    def at(self) -> datetime | None:
        moments = (self.message_at, self.api_key_used_at, self.member_login_at)
        return max((moment for moment in moments if moment is not None), default=None)


@dataclass(frozen=True)
class Channels:
    """The tenant's connection to each channel (secrets masked)."""

    papercups: ConnectionState
    crisp: CrispConnectionState


@dataclass(frozen=True)
class TenantOverview:
    """Everything staff look at first about one tenant."""

    tenant: Tenant
    account: BillingAccount
    plan: Plan
    usage: UsageSummary
    bot_access: BotAccess
    channels: Channels
    last_activity: LastActivity


def last_activity_get(*, tenant: Tenant) -> LastActivity:
    """When the tenant's bot last chatted, its API was last used and a member last signed in."""
    with tenant_context(tenant):
        message_at = Conversation.objects.aggregate(at=Max("last_message_at"))["at"]
    return LastActivity(
        message_at=message_at,
        api_key_used_at=ApiKey.objects.filter(tenant=tenant).aggregate(at=Max("last_used_at"))["at"],
        member_login_at=User.objects.filter(memberships__tenant=tenant).aggregate(at=Max("last_login"))["at"],
    )


def tenant_overview_get(*, tenant: Tenant) -> TenantOverview:
    """Plan, usage this billing period, bot access, channel connection state and last activity of a tenant."""
    account = billing_account_get(tenant=tenant)
    return TenantOverview(
        tenant=tenant,
        account=account,
        plan=plan_for_account(account=account),
        usage=usage_summary_get(tenant=tenant, account=account),
        bot_access=bot_access_get(tenant=tenant),
        channels=Channels(
            papercups=papercups_connection_state_get(tenant=tenant), crisp=crisp_connection_state_get(tenant=tenant)
        ),
        last_activity=last_activity_get(tenant=tenant),
    )


# --- A tenant's conversations and leads (read-only, for the console) -----------------------------------------------
RECORDS_SHOWN = 50


@dataclass(frozen=True)
class TenantRecordsPage:
    """The latest conversations and leads of a tenant, loaded (usable outside its schema), with totals."""

    conversations: list[Conversation]
    conversations_total: int
    leads: list[Lead]
    leads_total: int
    leads_email_given_up: int


def tenant_records_get(
    *, tenant: Tenant, limit: int = RECORDS_SHOWN, lead_email_given_up: bool = False
) -> TenantRecordsPage:
    """The tenant's latest conversations and leads (`lead_email_given_up`: only the leads whose email to the
    owner was given up), read in its schema; the connection is back where it was."""
    with tenant_context(tenant):
        conversations = conversation_list()
        leads = lead_list(email_given_up=True if lead_email_given_up else None)  # with their conversation
        return TenantRecordsPage(
            conversations=list(conversations[:limit]),
            conversations_total=conversations.count(),
            leads=list(leads[:limit]),
            leads_total=leads.count(),
            leads_email_given_up=lead_list(email_given_up=True).count(),
        )


def _plain_schema_names(schemas: list[str]) -> list[str]:
    for schema in schemas:
        if not _SCHEMA_NAME.match(schema):  # names are interpolated into SQL, so only plain identifiers pass
            raise ValueError(f"unexpected schema name {schema!r}")
    return [connection.ops.quote_name(schema) for schema in schemas]


def tenant_schemas_with_lead_emails_given_up() -> set[str]:
    """The schemas of the tenants with at least one lead whose email to the owner was given up (one statement per
    STATS_SCHEMAS_PER_QUERY tenants)."""
    schemas = list(
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .order_by("pk")
        .values_list("schema_name", flat=True)
    )
    found: set[str] = set()
    for start in range(0, len(schemas), STATS_SCHEMAS_PER_QUERY):
        batch = schemas[start : start + STATS_SCHEMAS_PER_QUERY]
        union = "\nUNION ALL\n".join(
            f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quoted}.chat_lead WHERE notify_gave_up_at IS NOT NULL)"  # noqa: S608
            for quoted in _plain_schema_names(batch)
        )
        with connection.cursor() as cursor:
            cursor.execute(union, batch)
            found.update(row[0] for row in cursor.fetchall())
    return found


def tenant_conversation_get(*, tenant: Tenant, conversation_id: uuid.UUID) -> tuple[Conversation, list[Message]] | None:
    """One conversation of the tenant with all its messages (notes included), or None."""
    with tenant_context(tenant):
        conversation = Conversation.objects.filter(public_id=conversation_id).first()
        if conversation is None:
            return None
        return conversation, list(conversation.messages.order_by("created_at", "id"))


# --- Platform totals ---------------------------------------------------------------------------------------------
@dataclass
class DayTotals:
    """One UTC day across every tenant."""

    day: date
    conversations: int = 0
    ai_replies: int = 0
    handoffs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class FailingConnection:
    channel: str
    tenant_id: int
    name: str
    problem: str
    checked_at: datetime


@dataclass
class PlatformStats:
    """Totals over the last `days` UTC days (today included) and the platform's state now."""

    since: datetime
    days: list[DayTotals]
    tenants_by_status: dict[str, int]
    tenants_suspended: int
    failed_deliveries_open: int
    failed_deliveries_since: int
    failing_connections: list[FailingConnection] = field(default_factory=list)

    @property
    def conversations(self) -> int:
        return sum(day.conversations for day in self.days)

    @property
    def handoffs(self) -> int:
        return sum(day.handoffs for day in self.days)

    @property
    def handoff_rate(self) -> float | None:
        """Handoffs per conversation started in the window (None without conversations)."""
        return round(self.handoffs / self.conversations, 4) if self.conversations else None


# Per tenant schema: conversations started, conversations handed to a human, and bot messages (AI replies are
# the metered ones: an LLM answer or an offline quote; never a cache hit, fallback, greeting or away message).
_PER_SCHEMA_SQL = """
SELECT (c.created_at AT TIME ZONE 'UTC')::date, count(*), 0, 0, 0, 0
  FROM {schema}.chat_conversation c WHERE c.created_at >= %(since)s GROUP BY 1
UNION ALL
SELECT (c.handed_off_at AT TIME ZONE 'UTC')::date, 0, 0, count(*), 0, 0
  FROM {schema}.chat_conversation c WHERE c.handed_off_at >= %(since)s GROUP BY 1
UNION ALL
SELECT (m.created_at AT TIME ZONE 'UTC')::date, 0,
       count(*) FILTER (WHERE m.kind = 'reply' AND NOT m.is_fallback AND NOT m.from_cache
                        AND (m.llm_model <> '' OR m.sources <> '[]'::jsonb)),
       0, coalesce(sum(m.prompt_tokens), 0), coalesce(sum(m.completion_tokens), 0)
  FROM {schema}.chat_message m WHERE m.role = 'bot' AND m.created_at >= %(since)s GROUP BY 1
"""


def _daily_rows(*, schemas: list[str], since: datetime) -> list[tuple[date, int, int, int, int, int]]:
    """Per-day sums over the given tenant schemas, in one statement."""
    union = "\nUNION ALL\n".join(_PER_SCHEMA_SQL.format(schema=quoted) for quoted in _plain_schema_names(schemas))
    sql = f"SELECT day, sum(c), sum(a), sum(h), sum(p), sum(t) FROM ({union}) AS u(day, c, a, h, p, t) GROUP BY day"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, {"since": since})
        return list(cursor.fetchall())


def platform_stats_get(*, days: int = 14, now: datetime | None = None) -> PlatformStats:
    """Tenants by status, conversations, AI replies, handoffs and LLM tokens per UTC day over `days` days,
    failed deliveries, and the tenants whose channel connection check is failing."""
    now = now or timezone.now()
    first_day = now.astimezone(UTC).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, time.min, tzinfo=UTC)
    totals = {first_day + timedelta(days=n): DayTotals(day=first_day + timedelta(days=n)) for n in range(days)}
    schemas = list(Tenant.objects.order_by("pk").values_list("schema_name", flat=True))
    for start in range(0, len(schemas), STATS_SCHEMAS_PER_QUERY):
        for day, conversations, ai_replies, handoffs, prompt, completion in _daily_rows(
            schemas=schemas[start : start + STATS_SCHEMAS_PER_QUERY], since=since
        ):
            if day in totals:
                entry = totals[day]
                entry.conversations += int(conversations)
                entry.ai_replies += int(ai_replies)
                entry.handoffs += int(handoffs)
                entry.prompt_tokens += int(prompt)
                entry.completion_tokens += int(completion)
    by_status = dict.fromkeys(Tenant.SubscriptionStatus.values, 0)
    for row in Tenant.objects.values("subscription_status").annotate(n=Count("pk")):
        by_status[row["subscription_status"]] = row["n"]
    failing = [
        FailingConnection(
            channel="papercups",
            tenant_id=check.tenant_id,
            name=check.tenant.name,
            problem=check.problem,
            checked_at=check.checked_at,
        )
        for check in ConnectionCheck.objects.filter(ok=False).select_related("tenant")
    ]
    failing += [
        FailingConnection(
            channel="crisp",
            tenant_id=crisp.tenant_id,
            name=crisp.tenant.name,
            problem=crisp.check_problem,
            checked_at=crisp.checked_at,
        )
        for crisp in CrispConnection.objects.filter(check_ok=False, checked_at__isnull=False).select_related("tenant")
        if crisp.checked_at is not None
    ]
    return PlatformStats(
        since=since,
        days=list(totals.values()),
        tenants_by_status=by_status,
        tenants_suspended=Tenant.objects.filter(suspended_at__isnull=False).count(),
        failed_deliveries_open=FailedDelivery.objects.filter(retried_at__isnull=True).count(),
        failed_deliveries_since=FailedDelivery.objects.filter(failed_at__gte=since).count(),
        failing_connections=sorted(failing, key=lambda c: c.checked_at, reverse=True),
    )
