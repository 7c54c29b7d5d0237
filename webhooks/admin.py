"""Staff console for the channels: each tenant's Papercups and Crisp connection, deliveries Netia gave up
on, and the channel accounts paused because they keep failing."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from netia.admin import is_set_filter
from webhooks.models import ChannelCircuit, CrispConnection, FailedDelivery, PapercupsConnection
from webhooks.selectors import papercups_connection_state_get
from webhooks.services import crisp_connection_check, failed_delivery_retry, papercups_connection_check, resume_now

_CONNECTION_FIELDS = (
    "name",
    "papercups_account_id",
    "base_url",
    "api_key_set",
    "papercups_bot_user_id",
    "webhook_url",
    "state",
    "check_detail",
    "checked_at",
    "failed_deliveries_open",
)


@admin.register(PapercupsConnection)
class PapercupsConnectionAdmin(admin.ModelAdmin):
    """Read-only: tenants change their connection through the API; staff check it and see what is wrong."""

    list_display = [
        "name",
        "papercups_account_id",
        "base_url",
        "api_key_set",
        "papercups_bot_user_id",
        "state",
        "checked_at",
        "failed_deliveries_open",
    ]
    list_filter = [("papercups_account_id", admin.EmptyFieldListFilter), "papercups_check__ok"]
    search_fields = ["name", "=papercups_account_id", "schema_name"]
    fields = _CONNECTION_FIELDS
    readonly_fields = _CONNECTION_FIELDS
    actions = ["check_connection"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PapercupsConnection]:
        return (
            super()
            .get_queryset(request)
            .select_related("papercups_check")
            .annotate(_failed_open=Count("failed_deliveries", filter=Q(failed_deliveries__retried_at__isnull=True)))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Base URL")
    def base_url(self, obj: PapercupsConnection) -> str:
        return papercups_connection_state_get(tenant=obj).base_url

    @admin.display(description="API key set", boolean=True)
    def api_key_set(self, obj: PapercupsConnection) -> bool:
        return bool(obj.papercups_api_key)

    @admin.display(description="Webhook URL (token masked)")
    def webhook_url(self, obj: PapercupsConnection) -> str:
        return papercups_connection_state_get(tenant=obj).webhook_url

    @admin.display(description="Connection")
    def state(self, obj: PapercupsConnection) -> str:
        check = getattr(obj, "papercups_check", None)
        if not obj.papercups_account_id:
            return "Not connected"
        if check is None:
            return "Never checked"
        return "OK" if check.ok else f"Problem: {check.problem}"

    @admin.display(description="Last check")
    def check_detail(self, obj: PapercupsConnection) -> str:
        check = getattr(obj, "papercups_check", None)
        return check.detail if check else ""

    @admin.display(description="Checked at")
    def checked_at(self, obj: PapercupsConnection) -> Any:
        check = getattr(obj, "papercups_check", None)
        return check.checked_at if check else None

    @admin.display(description="Failed deliveries (open)")
    def failed_deliveries_open(self, obj: PapercupsConnection) -> int:
        return int(getattr(obj, "_failed_open", 0))

    @admin.action(description="Check the Papercups connection now", permissions=["change"])
    def check_connection(self, request: HttpRequest, queryset: QuerySet[PapercupsConnection]) -> None:
        checks = [(tenant, papercups_connection_check(tenant=tenant)) for tenant in queryset]
        _report_checks(self, request, [(tenant, check.ok, check.problem) for tenant, check in checks])


@admin.register(CrispConnection)
class CrispConnectionAdmin(admin.ModelAdmin):
    """Read-only: tenants connect their Crisp website through the API; staff check it and see what is wrong."""

    list_display = ["tenant", "website_id", "plugin_installed", "handoff_operator_id", "check_ok", "checked_at"]
    list_filter = ["plugin_installed", "check_ok"]
    search_fields = ["tenant__name", "=website_id"]
    list_select_related = ["tenant"]
    readonly_fields = [f.name for f in CrispConnection._meta.fields]
    actions = ["check_connection"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Check the Crisp connection now", permissions=["change"])
    def check_connection(self, request: HttpRequest, queryset: QuerySet[CrispConnection]) -> None:
        checks = [(c.tenant, crisp_connection_check(tenant=c.tenant)) for c in queryset.select_related("tenant")]
        _report_checks(self, request, [(tenant, check.ok, check.problem) for tenant, check in checks])


def _report_checks(model_admin: admin.ModelAdmin, request: HttpRequest, checks: list[tuple[Any, bool, str]]) -> None:
    """One message for a "check now" action: how many were checked, and each problem by tenant."""
    problems = [f"{tenant}: {problem}" for tenant, ok, problem in checks if not ok]
    level = messages.WARNING if problems else messages.SUCCESS
    summary = f"Checked {len(checks)} connection(s); {len(problems)} with a problem."
    model_admin.message_user(request, " ".join([summary, *problems]), level)


OpenFilter = is_set_filter("retried_at", title="state", set_label="Retried", unset_label="Not retried")


@admin.register(FailedDelivery)
class FailedDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "failed_at",
        "tenant",
        "channel",
        "kind",
        "conversation_external_id",
        "content_preview",
        "attempts",
        "error",
        "retried_at",
    ]
    list_filter = [OpenFilter, "channel", "kind", "failed_at"]
    search_fields = ["tenant__name", "=conversation_external_id", "=message_public_id"]
    list_select_related = ["tenant"]
    readonly_fields = [f.name for f in FailedDelivery._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry the selected deliveries", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[FailedDelivery]) -> None:
        queued = sum(failed_delivery_retry(failed=failed) for failed in queryset.select_related("tenant"))
        self.message_user(request, f"Queued {queued} of {queryset.count()} delivery(ies) again.", messages.SUCCESS)


@admin.register(ChannelCircuit)
class ChannelCircuitAdmin(admin.ModelAdmin):
    """Per-tenant backoff: a channel account failing again and again is paused, then probed."""

    list_display = ["tenant", "channel", "failures", "open_until", "last_error", "updated_at"]
    list_filter = ["channel", is_set_filter("open_until", title="paused", set_label="Paused", unset_label="Not paused")]
    search_fields = ["tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = [f.name for f in ChannelCircuit._meta.fields]
    actions = ["resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Resume now (forget the failures, send what is pending)", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[ChannelCircuit]) -> None:
        resumed = sum(resume_now(tenant=c.tenant, channel=c.channel) for c in queryset.select_related("tenant"))
        self.message_user(request, f"Queued {resumed} conversation(s) for delivery.", messages.SUCCESS)
