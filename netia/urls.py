"""URL map. API under /api/v1 (the admin API under /api/v1/admin), Papercups webhooks under /papercups, Stripe
webhooks under /stripe, staff console under /admin."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView

from netia import errors
from netia.api import HealthApi, metrics_view
from netia.docs import ApiDocsRedocView, ApiDocsSwaggerView
from netia.middleware import API_PATH_PREFIXES
from webhooks.urls import webhook_urlpatterns

api_v1: list[URLPattern | URLResolver] = [
    path("health", HealthApi.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    # Rendered as YAML or HTML: other methods get the JSON 405 from read_only_api.
    path("schema", errors.read_only_api(SpectacularAPIView.as_view()), name="schema"),
    path("docs", errors.read_only_api(ApiDocsSwaggerView.as_view(url_name="schema")), name="docs"),
    path("redoc", errors.read_only_api(ApiDocsRedocView.as_view(url_name="schema")), name="redoc"),
    path("", include("tenants.urls")),
    path("", include("chat.urls")),
    path("", include("billing.urls")),
    path("", include("webhooks.urls")),
    path("", include("tenants.urls")),
    path("admin/", include("staff.urls")),
]

urlpatterns: list[URLPattern | URLResolver] = [
    # Papercups webhooks: /papercups/webhook?token=<the tenant's webhook secret>. First: the hot path resolves
    # without trying (and failing) the other prefixes.
    *webhook_urlpatterns,
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # Anything else under the API paths is a JSON 404, whatever DEBUG says (no HTML error page there).
    re_path(r"^(?:api|papercups)(?:/.*)?$", errors.json_not_found, name="api-not-found"),
    # Stripe webhooks: /stripe/webhook/<endpoint uuid>/, signed with that endpoint's secret (dj-stripe).
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("", include("dashboard.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """JSON for API paths, the HTML page elsewhere."""
    if request.path.startswith(API_PATH_PREFIXES):
        return errors.json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    """JSON for API paths, the HTML page elsewhere."""
    if request.path.startswith(API_PATH_PREFIXES):
        return errors.json_server_error(request)
    return defaults.server_error(request)


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PATH_PREFIXES):
        return errors.json_bad_request(request, exception)
    return defaults.bad_request(request, exception)
