"""The admin REST API, mounted at /api/v1/admin/."""

from __future__ import annotations

from django.urls import URLPattern, path

from staff.api import stats, tenants

urlpatterns: list[URLPattern] = [
    path("tenants", tenants.TenantListCreateApi.as_view(), name="admin-tenants"),
    path("tenants/<int:tenant_id>", tenants.TenantDetailApi.as_view(), name="admin-tenant"),
    path("tenants/<int:tenant_id>/suspend", tenants.TenantSuspendApi.as_view(), name="admin-tenant-suspend"),
    path("tenants/<int:tenant_id>/resume", tenants.TenantResumeApi.as_view(), name="admin-tenant-resume"),
    path(
        "tenants/<int:tenant_id>/webhook-secret",
        tenants.TenantWebhookSecretApi.as_view(),
        name="admin-tenant-webhook-secret",
    ),
    path(
        "tenants/<int:tenant_id>/sign-in-link", tenants.TenantSignInLinkApi.as_view(), name="admin-tenant-sign-in-link"
    ),
    path("tenants/<int:tenant_id>/audit", tenants.TenantAuditListApi.as_view(), name="admin-tenant-audit"),
    path("stats", stats.PlatformStatsApi.as_view(), name="admin-stats"),
]
