"""Staff console for tenants, users, memberships and API keys."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from netia.admin import is_set_filter
from netia.errors import Conflict, ValidationFailed
from netia.ratelimits import client_ip
from tenants.audit import Actor
from tenants.models import ApiKey, AuditEvent, Domain, Membership, Tenant, User
from tenants.services import (
    api_key_revoke,
    domain_add,
    domain_name_clean,
    domain_primary_set,
    domain_remove,
    tenant_resume,
    tenant_settings_update,
    tenant_suspend,
)


def console_actor(request: HttpRequest) -> Actor:
    """The staff user acting in the console, for the audit trail."""
    return Actor.staff(request.user)  # type: ignore[arg-type]  # the admin site lets only staff users in


SuspendedFilter = is_set_filter("suspended_at", title="suspended", set_label="Suspended", unset_label="Not suspended")


class ReadOnlyMembershipMixin:
    """Memberships are shown, never edited, in the console: the team services (invite, role, removal) record each
    change in the audit trail, a bare form would not."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(ReadOnlyMembershipMixin, admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "tenant", "role", "created_at")
    readonly_fields = fields


class DomainForm(forms.ModelForm):
    """A domain row: a new one takes a host name, an existing one's name is fixed (remove it and add another)."""

    class Meta:
        model = Domain
        fields = ["domain", "is_primary"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["domain"].disabled = True
        else:
            # The model's default (django-tenants: True) would tick every new row; a tenant's first domain
            # becomes primary anyway (domain_add).
            self.initial["is_primary"] = False

    def clean_domain(self) -> str:
        if self.instance.pk is not None:
            return self.instance.domain
        try:
            return domain_name_clean(self.cleaned_data["domain"])
        except ValidationFailed as error:
            raise forms.ValidationError(error.message) from None


class DomainFormSet(BaseInlineFormSet):
    """The tenant keeps exactly one primary domain (the services refuse removing it without a successor). A tenant
    without domains may add them all unticked: the first one added becomes primary (domain_add)."""

    def clean(self) -> None:
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        primaries = sum(1 for f in kept if f.cleaned_data.get("is_primary"))
        if primaries > 1 or (primaries == 0 and self.initial_forms):
            raise forms.ValidationError("Keep exactly one primary domain.")


class DomainInline(admin.TabularInline):
    """Saved by `TenantAdmin.save_formset` through the domain services, so each change is audited."""

    model = Domain
    form = DomainForm
    formset = DomainFormSet
    extra = 0


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("name", "prefix", "permissions", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner_email",
        "subscription_status",
        "schema_name",
        "papercups_account_id",
        "suspended_at",
        "created_at",
    ]
    list_filter = ["subscription_status", SuspendedFilter, "created_at"]
    search_fields = ["name", "owner_email", "schema_name", "=papercups_account_id", "=public_token"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "schema_name",
        "public_token",
        "papercups_bot_user_id",
        "suspended_at",
        "created_at",
        "updated_at",
        "pages",
        "audit_trail",
    ]
    # The form offers only what `tenant_settings_update` changes; the chat's settings have their own service (the
    # owner's dashboard and the admin API), the secrets and the suspension theirs.
    fields = [
        "name",
        "owner_email",
        "subscription_status",
        "papercups_account_id",
        "papercups_base_url",
        "chat_allowed_origins",
        "chat_turns_per_hour",
        *readonly_fields,
    ]
    readonly_fields = [*readonly_fields, "chat_allowed_origins", "chat_turns_per_hour"]
    # The layers above add theirs with `tenant_admin_inline_add` (billing puts the billing state first).
    inlines = [MembershipInline, ApiKeyInline, DomainInline]
    actions = ["suspend", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tenants are created by the onboarding service (schema, owner, key), not by a bare form.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        """Edits go through the service that records them in the audit trail."""
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        tenant_settings_update(
            tenant=obj, changes=changes, actor=console_actor(request), ip=client_ip("audit", request)
        )

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """A domain service's Conflict at save time (a host name another tenant took after the form was validated)
        is shown as an error; the view's transaction has rolled the whole change back."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except Conflict as error:
            self.message_user(request, f"Nothing was saved: {error.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Domains go through their audited services (additions and the primary first, so the old primary can
        then be removed); the other inlines are read-only."""
        if formset.model is not Domain:
            super().save_formset(request, form, formset, change)
            return
        actor, ip = console_actor(request), client_ip("audit", request)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.forms:
            if row in formset.deleted_forms or not row.has_changed():
                continue
            if row.instance.pk is None:
                formset.new_objects.append(
                    domain_add(
                        tenant=form.instance, domain=row.cleaned_data["domain"], actor=actor, ip=ip,
                        primary=row.cleaned_data["is_primary"],
                    )
                )  # fmt: skip
            elif row.cleaned_data["is_primary"]:
                domain_primary_set(domain=row.instance, actor=actor, ip=ip)
                formset.changed_objects.append((row.instance, ["is_primary"]))
        for row in formset.deleted_forms:
            if row.instance.pk is not None:
                domain_remove(domain=row.instance, actor=actor, ip=ip)
                formset.deleted_objects.append(row.instance)

    @admin.display(description="More about this tenant")
    def pages(self, tenant: Tenant) -> str:
        links = [(label, reverse(url_name, args=[tenant.pk])) for label, url_name in _TENANT_PAGES]
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, label) for label, url in links)) or "—"

    @admin.display(description="Audit trail (latest 10)")
    def audit_trail(self, tenant: Tenant) -> str:
        events = AuditEvent.objects.filter(tenant=tenant)[:10]
        rows = format_html_join(
            "",
            "<li>{}: {} by {}{}</li>",
            (
                (
                    f"{e.created_at:%Y-%m-%d %H:%M}",
                    e.get_action_display(),
                    e.actor_label,
                    f" from {e.ip}" if e.ip else "",
                )
                for e in events
            ),
        )
        url = reverse("admin:tenants_auditevent_changelist") + f"?tenant__id__exact={tenant.pk}"
        return format_html('<ul style="margin:0">{}</ul><a href="{}">All events</a>', rows, url)

    @admin.action(description="Suspend selected tenants", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_suspend(tenant=tenant, actor=console_actor(request), ip=client_ip("audit", request))
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).", messages.SUCCESS)

    @admin.action(description="Resume selected tenants", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_resume(tenant=tenant, actor=console_actor(request), ip=client_ip("audit", request))
        self.message_user(request, f"Resumed {queryset.count()} tenant(s).", messages.SUCCESS)


def tenant_admin_inline_add(inline: type[InlineModelAdmin[Any, Any]], *, first: bool = False) -> None:
    """A hook for the layers above: show their per-tenant state on the tenant's page (tenants imports none)."""
    if inline not in TenantAdmin.inlines:
        TenantAdmin.inlines = [inline, *TenantAdmin.inlines] if first else [*TenantAdmin.inlines, inline]


def _from(ip: str | None) -> str:
    return f" from {ip}" if ip else ""


# (label, admin URL name taking the tenant id) of pages the layers above offer about one tenant.
_TENANT_PAGES: list[tuple[str, str]] = []


def tenant_admin_page_add(*, label: str, url_name: str) -> None:
    """A hook for the layers above: link a page of theirs about one tenant from the tenant's page."""
    if (label, url_name) not in _TENANT_PAGES:
        _TENANT_PAGES.append((label, url_name))


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail of every tenant: read-only, filtered by tenant, action or kind of actor."""

    list_display = ["created_at", "tenant", "action", "actor_label", "actor_kind", "ip", "details"]
    list_filter = ["action", "actor_kind", "created_at"]
    search_fields = ["tenant__name", "actor_label", "=ip"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "=prefix", "tenant__name"]
    readonly_fields = ["tenant", "prefix", "secret_hash", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["tenant"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key, actor=console_actor(request), ip=client_ip("audit", request))
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyMembershipMixin, admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__name"]
    list_select_related = ["user", "tenant"]
