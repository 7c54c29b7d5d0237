"""Reads for billing: may this tenant's bot answer right now, on which plan, with how much usage left?"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing.models import BillingAccount, Plan, UsagePeriod
from netia.errors import PlanLimitExceeded
from netia.versioned_cache import Prefetched, cached
from tenants.models import Tenant

# Version-keyed cache of each tenant's billing account and plan (every BillingAccount or Plan write bumps it).
BILLING_CACHE = "billing"


@dataclass(frozen=True)
class BotAccess:
    """Whether the tenant's bot may answer; `reason` is a stable code when it may not."""

    allowed: bool
    reason: str = ""
    # The billing state the decision read (when it got that far): the turn's other billing reads reuse it.
    state: BillingState | None = field(default=None, compare=False, repr=False)
    # The period's AI replies the decision read (a limited plan's), for metering's email thresholds.
    used: int | None = field(default=None, compare=False, repr=False)


class AccessReason:
    """The stable reason codes of a denied BotAccess (API clients and handoff notes carry them)."""

    TENANT_SUSPENDED = "tenant_suspended"
    SUBSCRIPTION_INACTIVE = "subscription_inactive"  # canceled or unpaid
    PAYMENT_OVERDUE = "payment_overdue"  # past_due for longer than the grace period
    TRIAL_ENDED = "trial_ended"  # the trial is over and there is no subscription
    PLAN_LIMIT_REACHED = "plan_limit_reached"  # the period's AI replies are used up


ACTIVE_STATUSES = frozenset(
    {Tenant.SubscriptionStatus.TRIALING, Tenant.SubscriptionStatus.ACTIVE, Tenant.SubscriptionStatus.PAST_DUE}
)
# Stripe statuses under which the subscription's period is the tenant's billing period.
LIVE_STRIPE_STATUSES = frozenset({"trialing", "active", "past_due"})


@dataclass(frozen=True)
class UsageSummary:
    """AI replies used in the current billing period against the plan's limit (None: unlimited)."""

    period_start: datetime
    period_end: datetime
    ai_replies: int
    ai_replies_limit: int | None


def _add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by calendar months, the day clamped to the month's length (Jan 31 + 1 = Feb 28)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    next_first = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=moment.tzinfo)
    last_day = (next_first - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def billing_account_get(*, tenant: Tenant) -> BillingAccount:
    """The tenant's billing account (plan loaded); for a tenant that has none yet, an unsaved default one."""
    account = BillingAccount.objects.select_related("plan").filter(tenant=tenant).first()
    if account is None:
        account = BillingAccount(
            tenant=tenant, trial_ends_at=tenant.created_at + timedelta(days=settings.BILLING_TRIAL_DAYS)
        )
    return account


def plan_default_get() -> Plan:
    """The plan of tenants without a subscription (created by the billing migrations)."""
    return Plan.objects.get(is_default=True)


def plan_for_account(*, account: BillingAccount) -> Plan:
    """The plan whose limits apply: the subscribed one, else the default plan."""
    return account.plan if account.plan is not None else plan_default_get()


@dataclass(frozen=True)
class BillingState:
    """A tenant's billing account and the plan whose limits apply: what the bot-access decision reads."""

    account: BillingAccount
    plan: Plan


def billing_state_cache_key(*, tenant: Tenant) -> tuple[str, str]:
    """Where `billing_state_get` caches the tenant's state (for `versioned_cache.prefetch`)."""
    return BILLING_CACHE, f"tenant:{tenant.pk}"


def billing_state_get(*, tenant: Tenant, prefetched: Prefetched | None = None) -> BillingState:
    """The tenant's billing account and applicable plan, from the version-keyed cache (BILLING_CACHE)."""

    def load() -> BillingState:
        account = billing_account_get(tenant=tenant)
        plan = plan_for_account(account=account)
        account.plan = None if account.plan_id is None else plan  # the plan once, not a second copy
        return BillingState(account=account, plan=plan)

    state = cached(*billing_state_cache_key(tenant=tenant), load, prefetched=prefetched)
    assert state is not None  # noqa: S101 - load() never returns None
    return state


def plan_list_purchasable() -> QuerySet[Plan]:
    """Plans a tenant can subscribe to through Checkout: active and mapped to an active Stripe price."""
    return Plan.objects.select_related("price").filter(is_active=True, price__isnull=False, price__active=True)


def _advance(moment: datetime, interval: str, count: int) -> datetime:
    """`moment` moved by one billing interval (Stripe's calendar arithmetic; an unknown interval is a month)."""
    if interval == "day":
        return moment + timedelta(days=count)
    if interval == "week":
        return moment + timedelta(weeks=count)
    return _add_months(moment, count * (12 if interval == "year" else 1))


def _calendar_month(now: datetime) -> tuple[datetime, datetime]:
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return month_start, _add_months(month_start, 1)


def billing_period_for(*, account: BillingAccount, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The usage period containing `now`: plans allow so many AI replies per month, so it is a month.

    With a live Stripe subscription billed monthly it is the subscription's period; billed yearly (or every
    few months) it is the month of that period containing `now`, counted from the period's start (a yearly
    price is twelve monthly allowances, not one year-long one); billed weekly or daily, and without a
    subscription, it is the UTC calendar month. When Stripe's renewal has not reached us yet (`now` past the
    stored period end), the next period starts exactly where the stored one ended, as Stripe's do.
    """
    now = now or timezone.now()
    start, end = account.current_period_start, account.current_period_end
    interval, count = account.price_interval, max(1, account.price_interval_count)
    live = account.stripe_status in LIVE_STRIPE_STATUSES and start is not None and end is not None
    if not live or interval in ("day", "week") or start is None or end is None or start > now:
        return _calendar_month(now)
    while now >= end:
        start, end = end, _advance(end, interval, count)
    if interval in ("", "month") and count == 1:
        return start, end
    months = 0
    while _add_months(start, months + 1) <= now:
        months += 1
    return _add_months(start, months), min(_add_months(start, months + 1), end)


_USAGE_SQL = f'SELECT ai_replies FROM "{UsagePeriod._meta.db_table}" WHERE tenant_id = %s AND period_start = %s'  # noqa: S608


def usage_summary_get(
    *, tenant: Tenant, account: BillingAccount | None = None, plan: Plan | None = None, now: datetime | None = None
) -> UsageSummary:
    """AI replies used in the tenant's current billing period, with the plan's limit."""
    account = account or billing_account_get(tenant=tenant)
    start, end = billing_period_for(account=account, now=now)
    # One row by its unique key, read on every chat turn: plain SQL (the ORM's query building cost more than
    # the query).
    with connection.cursor() as cursor:
        cursor.execute(_USAGE_SQL, [tenant.pk, start])
        row = cursor.fetchone()
    used = row[0] if row else 0
    return UsageSummary(
        period_start=start,
        period_end=end,
        ai_replies=used or 0,
        ai_replies_limit=(plan or plan_for_account(account=account)).ai_replies_per_month,
    )


def bot_access_get(*, tenant: Tenant, now: datetime | None = None, prefetched: Prefetched | None = None) -> BotAccess:
    """The bot answers for tenants that are not suspended, in good standing, and within their plan's limit.

    Denied: suspended; canceled or unpaid; past_due beyond BILLING_PAST_DUE_GRACE_DAYS; trialing without a
    Stripe subscription after the trial's end; the current period's AI replies at the plan's limit.
    Account and plan come from the version-keyed cache; only a limited plan's usage is read (one query).
    """
    now = now or timezone.now()
    if tenant.is_suspended:
        return BotAccess(allowed=False, reason=AccessReason.TENANT_SUSPENDED)
    status = tenant.subscription_status
    if status not in ACTIVE_STATUSES:
        return BotAccess(allowed=False, reason=AccessReason.SUBSCRIPTION_INACTIVE)
    state = billing_state_get(tenant=tenant, prefetched=prefetched)
    account = state.account
    grace = timedelta(days=settings.BILLING_PAST_DUE_GRACE_DAYS)
    past_due_since = account.past_due_since
    if status == Tenant.SubscriptionStatus.PAST_DUE and past_due_since is not None and now - past_due_since > grace:
        return BotAccess(allowed=False, reason=AccessReason.PAYMENT_OVERDUE)
    own_trial = status == Tenant.SubscriptionStatus.TRIALING and not account.stripe_subscription_id
    if own_trial and account.trial_ends_at <= now:
        return BotAccess(allowed=False, reason=AccessReason.TRIAL_ENDED)
    if state.plan.ai_replies_per_month is None:
        return BotAccess(allowed=True, state=state)
    usage = usage_summary_get(tenant=tenant, account=account, plan=state.plan, now=now)
    if usage.ai_replies_limit is not None and usage.ai_replies >= usage.ai_replies_limit:
        return BotAccess(allowed=False, reason=AccessReason.PLAN_LIMIT_REACHED, state=state, used=usage.ai_replies)
    return BotAccess(allowed=True, state=state, used=usage.ai_replies)


def tenants_with_stripe_customer() -> QuerySet[Tenant]:
    """Tenants that have a Stripe customer (the billing reconciliation visits them)."""
    with_customer = Q(billing_account__stripe_customer_id__gt="") | Q(djstripe_customers__isnull=False)
    return Tenant.objects.filter(with_customer).distinct().order_by("pk")


def plan_quota_check(*, tenant: Tenant, resource: str, used: int) -> None:
    """Raise PlanLimitExceeded if adding one more `resource` ("knowledge_articles", "team_seats") would
    exceed the tenant's plan; for the knowledge and team-member writes to call before creating."""
    plan = plan_for_account(account=billing_account_get(tenant=tenant))
    limits = {"knowledge_articles": plan.knowledge_articles_max, "team_seats": plan.team_seats}
    if resource not in limits:
        raise ValueError(f"unknown plan resource {resource!r}")
    limit = limits[resource]
    if limit is not None and used >= limit:
        raise PlanLimitExceeded(extra={"resource": resource, "limit": limit, "plan": plan.code})


def llm_models_allowed(*, tenant: Tenant, state: BillingState | None = None) -> list[str]:
    """The LLM models the tenant may choose: the default (OPENAI_MODEL), then its plan's among LLM_MODELS.

    The plan comes from `state` (the turn's bot-access decision read it) or the version-keyed billing cache.
    """
    plan = (state or billing_state_get(tenant=tenant)).plan
    default = settings.OPENAI_MODEL
    offered = [m for m in plan.llm_models or [] if isinstance(m, str) and m in settings.LLM_MODELS and m != default]
    return [default, *offered]
