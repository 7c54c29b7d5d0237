"""Staff console for billing: plans (limits as data), every tenant's billing state with Stripe links,
usage per period and the billing emails sent; and which of dj-stripe's admin pages staff see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import djstripe.admin  # noqa: F401  (registers dj-stripe's models, which are trimmed below)
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils import timezone
from django.utils.html import format_html

from billing import stripe_client
from billing.models import BillingAccount, BillingNotification, Plan, UsagePeriod
from billing.selectors import plan_for_account, usage_summary_get
from billing.services import trial_extend
from billing.services.stripe_sync import RECONCILE_TENANT_TASK
from netia.dispatch import enqueue_safely
from netia.ratelimits import client_ip
from tenants.admin import console_actor, tenant_admin_inline_add


class DuplicateFilter(admin.SimpleListFilter):
    """Accounts whose last reconciliation found more than one ongoing Stripe subscription."""

    title = "subscriptions in Stripe"
    parameter_name = "duplicates"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "More than one ongoing")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[BillingAccount]) -> QuerySet[BillingAccount]:
        return queryset.filter(ongoing_subscriptions__1__isnull=False) if self.value() == "yes" else queryset


def _stripe_links(account: BillingAccount) -> str:
    links = [
        (label, stripe_client.dashboard_url(kind, object_id))
        for label, kind, object_id in (
            ("customer", "customers", account.stripe_customer_id),
            ("subscription", "subscriptions", account.stripe_subscription_id),
        )
        if object_id
    ]
    if not links:
        return "—"
    html = format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', links[0][1], links[0][0])
    for label, url in links[1:]:
        html = format_html('{} · <a href="{}" target="_blank" rel="noopener">{}</a>', html, url, label)
    return html


def _usage(account: BillingAccount) -> str:
    usage = usage_summary_get(tenant=account.tenant, account=account)
    limit = "∞" if usage.ai_replies_limit is None else str(usage.ai_replies_limit)
    return f"{usage.ai_replies} / {limit} AI replies since {usage.period_start:%Y-%m-%d}"


class BillingAccountInline(admin.StackedInline):
    """The tenant's billing state on its admin page (read-only: Stripe's webhooks maintain it)."""

    model = BillingAccount
    can_delete = False
    fields = (
        "plan_in_effect",
        "trial_ends_at",
        "stripe_status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "past_due_since",
        "period_usage",
        "stripe_links",
        "synced_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="plan")
    def plan_in_effect(self, account: BillingAccount) -> str:
        return plan_for_account(account=account).name

    @admin.display(description="usage this period")
    def period_usage(self, account: BillingAccount) -> str:
        return _usage(account)

    @admin.display(description="Stripe")
    def stripe_links(self, account: BillingAccount) -> str:
        return _stripe_links(account)


tenant_admin_inline_add(BillingAccountInline, first=True)


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    """Every tenant's plan, status, trial end, usage and Stripe links in one list."""

    list_display = [
        "tenant",
        "status",
        "plan_in_effect",
        "trial_ends_at",
        "period_usage",
        "current_period_end",
        "subscriptions_in_stripe",
        "stripe_links",
    ]
    list_filter = ["tenant__subscription_status", "stripe_status", "plan", DuplicateFilter]
    search_fields = ["tenant__name", "tenant__owner_email", "=stripe_customer_id", "=stripe_subscription_id"]
    list_select_related = ["tenant", "plan"]
    readonly_fields = [
        "tenant",
        "plan",
        "stripe_customer_id",
        "stripe_subscription_id",
        "stripe_status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "past_due_since",
        "price_interval",
        "price_interval_count",
        "ongoing_subscriptions",
        "synced_at",
        "reconciled_at",
        "stripe_links",
        "created_at",
        "updated_at",
    ]
    fields = ["tenant", "trial_ends_at", *readonly_fields[1:]]
    actions = ["extend_trial", "reconcile"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BillingAccount]:
        latest = UsagePeriod.objects.filter(tenant=OuterRef("tenant")).order_by("-period_start")
        return (
            super()
            .get_queryset(request)
            .annotate(
                latest_replies=Subquery(latest.values("ai_replies")[:1]),
                latest_start=Subquery(latest.values("period_start")[:1]),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # onboarding creates accounts

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="status", ordering="tenant__subscription_status")
    def status(self, account: BillingAccount) -> str:
        return account.tenant.get_subscription_status_display()

    @admin.display(description="plan")
    def plan_in_effect(self, account: BillingAccount) -> str:
        return account.plan.name if account.plan is not None else "Default (trial)"

    @admin.display(description="latest period usage")
    def period_usage(self, account: BillingAccount) -> str:
        replies, start = getattr(account, "latest_replies", None), getattr(account, "latest_start", None)
        if start is None:
            return "0 AI replies"
        return f"{replies} AI replies since {start:%Y-%m-%d}"

    @admin.display(description="Stripe")
    def stripe_links(self, account: BillingAccount) -> str:
        return _stripe_links(account)

    @admin.display(description="ongoing in Stripe")
    def subscriptions_in_stripe(self, account: BillingAccount) -> str:
        count = len(account.ongoing_subscriptions or [])
        if account.reconciled_at is None:
            return "not reconciled yet"
        return f"{count} (more than one: billing error)" if count > 1 else str(count)

    @admin.action(description="Reconcile with Stripe now (re-read the subscriptions)", permissions=["change"])
    def reconcile(self, request: HttpRequest, queryset: QuerySet[BillingAccount]) -> None:
        for account in queryset.select_related("tenant"):
            enqueue_safely(RECONCILE_TENANT_TASK, tenant_id=account.tenant_id)
        self.message_user(request, f"Queued {queryset.count()} reconciliation(s).", messages.SUCCESS)

    @admin.action(description=f"Extend trial by {settings.BILLING_TRIAL_DAYS} days from now", permissions=["change"])
    def extend_trial(self, request: HttpRequest, queryset: QuerySet[BillingAccount]) -> None:
        until = timezone.now() + timedelta(days=settings.BILLING_TRIAL_DAYS)
        for account in queryset.select_related("tenant"):
            trial_extend(
                tenant=account.tenant,
                until=max(until, account.trial_ends_at),
                actor=console_actor(request),
                ip=client_ip("audit", request),
            )
        self.message_user(request, f"Extended {queryset.count()} trial(s).", messages.SUCCESS)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "price",
        "ai_replies_per_month",
        "knowledge_articles_max",
        "team_seats",
        "is_default",
        "is_active",
    ]
    list_filter = ["is_active", "is_default"]
    search_fields = ["name", "code", "=price__id"]
    list_select_related = ["price"]
    raw_id_fields = ["price"]

    def has_delete_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        # The default plan is what trialing tenants run on; plans in use are protected by the foreign key.
        return not (obj is not None and obj.is_default)


@admin.register(UsagePeriod)
class UsagePeriodAdmin(admin.ModelAdmin):
    list_display = ["tenant", "period_start", "period_end", "ai_replies", "updated_at"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__name"]
    date_hierarchy = "period_start"
    readonly_fields = ["tenant", "period_start", "period_end", "ai_replies", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(BillingNotification)
class BillingNotificationAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "kind",
        "key",
        "created_at",
        "claimed_at",
        "sent_at",
        "attempts",
        "gave_up_at",
        "gave_up_reason",
        "error",
    ]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter), ("gave_up_at", admin.EmptyFieldListFilter)]
    list_select_related = ["tenant"]
    search_fields = ["tenant__name", "key"]
    readonly_fields = [
        "tenant",
        "kind",
        "key",
        "context",
        "created_at",
        "claimed_at",
        "sent_at",
        "attempts",
        "gave_up_at",
        "gave_up_reason",
        "error",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# dj-stripe registers ~45 models. Staff act on these; the rest (charges, payment methods, tax codes …) are
# one click away in Stripe's dashboard and only crowd the console.
DJSTRIPE_ADMIN_MODELS = frozenset(
    {"customer", "subscription", "invoice", "price", "product", "event", "webhookendpoint"}
)


def _djstripe_admin_trim() -> None:
    """Unregister dj-stripe's admin pages that are not in DJSTRIPE_ADMIN_MODELS."""
    for model in apps.get_app_config("djstripe").get_models():
        if model._meta.model_name not in DJSTRIPE_ADMIN_MODELS and admin.site.is_registered(model):
            admin.site.unregister(model)


def _change_required(model_admin: admin.ModelAdmin, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not model_admin.has_change_permission(request):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


def _djstripe_actions_need_change() -> None:
    """dj-stripe's "re-sync" actions overwrite local rows from Stripe yet declare no permission: they need
    "change", both in the action menu and at the confirmation page they post to (its own URL)."""
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "djstripe":
            continue
        for name in model_admin.actions or ():
            if isinstance(name, str):
                getattr(type(model_admin), name).allowed_permissions = ("change",)
        urls = model_admin.get_urls

        def get_urls(model_admin: admin.ModelAdmin = model_admin, urls: Callable[[], list[Any]] = urls) -> list[Any]:
            patterns = urls()
            for pattern in patterns:
                if isinstance(pattern, URLPattern) and pattern.name == "djstripe_custom_action":
                    pattern.callback = _change_required(model_admin, pattern.callback)
            return patterns

        model_admin.get_urls = get_urls  # type: ignore[method-assign]


_djstripe_admin_trim()
_djstripe_actions_need_change()
