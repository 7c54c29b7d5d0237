"""Staff console: staff API keys, and the read-only, audited view of a tenant's conversations and leads."""

from __future__ import annotations

import uuid
from typing import Any

from axes.admin import AccessAttemptAdmin
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from netia.ratelimits import client_ip
from staff.models import StaffApiKey, TenantRecords
from staff.selectors import tenant_conversation_get, tenant_records_get, tenant_schemas_with_lead_emails_given_up
from staff.services import staff_key_revoke, tenant_records_look_record
from tenants.admin import console_actor, tenant_admin_page_add

# ?lead_email=given_up: the tenants (list) or the leads (a tenant's page) whose email to the owner was given up.
LEAD_EMAIL_PARAM, GIVEN_UP = "lead_email", "given_up"

# django-axes' "clean up expired attempts" deletes rows yet declares no permission: it needs "delete".
AccessAttemptAdmin.cleanup_expired_attempts.allowed_permissions = ("delete",)


@admin.register(StaffApiKey)
class StaffApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py staff_key_create` (the secret is printed once); here they are revoked."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "=prefix", "user__email"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["secret_hash"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected staff keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[StaffApiKey]) -> None:
        for key in queryset:
            staff_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} staff key(s).", messages.SUCCESS)


class LeadEmailFilter(admin.SimpleListFilter):
    """Tenants with a lead whose email to the owner was given up (read across the tenants' schemas)."""

    title = "lead emails"
    parameter_name = LEAD_EMAIL_PARAM

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(GIVEN_UP, "Some given up"), ("none_given_up", "None given up")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[TenantRecords]) -> QuerySet[TenantRecords]:
        if self.value() not in (GIVEN_UP, "none_given_up"):
            return queryset
        schemas = tenant_schemas_with_lead_emails_given_up()
        if self.value() == GIVEN_UP:
            return queryset.filter(schema_name__in=schemas)
        return queryset.exclude(schema_name__in=schemas)


@admin.register(TenantRecords)
class TenantRecordsAdmin(admin.ModelAdmin):
    """Pick a tenant, then read its latest conversations and leads; nothing here can be changed.

    Each page opened is recorded in the tenant's audit trail (who, when, from where, which conversation).
    """

    list_display = ["name", "owner_email", "created_at"]
    list_filter = [LeadEmailFilter]
    search_fields = ["name", "owner_email", "=papercups_account_id"]
    fields = ["name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        conversation = path(
            "<int:object_id>/conversations/<uuid:conversation_id>/",
            self.admin_site.admin_view(self.conversation_view),
            name="staff_tenantrecords_conversation",
        )
        return [conversation, *super().get_urls()]

    def _tenant(self, request: HttpRequest, object_id: str) -> TenantRecords:
        tenant = self.get_object(request, object_id)
        if tenant is None:
            raise Http404("No such tenant.")
        if not self.has_view_permission(request, tenant):
            raise PermissionDenied
        return tenant

    def _look(self, request: HttpRequest, tenant: TenantRecords, conversation_id: uuid.UUID | None = None) -> None:
        tenant_records_look_record(
            tenant=tenant, actor=console_actor(request), ip=client_ip("audit", request), conversation_id=conversation_id
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        tenant = self._tenant(request, object_id)
        given_up_only = request.GET.get(LEAD_EMAIL_PARAM) == GIVEN_UP
        records = tenant_records_get(tenant=tenant, lead_email_given_up=given_up_only)
        self._look(request, tenant)
        context = {
            "given_up_only": given_up_only,
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{tenant.name}: conversations and leads",
            "tenant": tenant,
            "records": records,
            "tenant_url": reverse("admin:tenants_tenant_change", args=[tenant.pk]),
        }
        return TemplateResponse(request, "staff/admin/tenant_records.html", context)

    def conversation_view(self, request: HttpRequest, object_id: str, conversation_id: uuid.UUID) -> HttpResponse:
        tenant = self._tenant(request, object_id)
        found = tenant_conversation_get(tenant=tenant, conversation_id=conversation_id)
        if found is None:
            raise Http404("No such conversation.")
        self._look(request, tenant, conversation_id)
        conversation, conversation_messages = found
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{tenant.name}: conversation {conversation.public_id}",
            "tenant": tenant,
            "conversation": conversation,
            "conversation_messages": conversation_messages,
        }
        return TemplateResponse(request, "staff/admin/conversation.html", context)


tenant_admin_page_add(label="Conversations and leads (read-only, audited)", url_name="admin:staff_tenantrecords_change")
