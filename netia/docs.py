"""The API's browsable documentation: Swagger UI and ReDoc, served from the platform's own static files."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

# Both pages load only what the platform serves: scripts and styles under /static/, the schema from
# /api/v1/schema, Swagger UI's start-up script from its own URL. No inline script; inline styles are allowed
# because both UIs set them at run time. ReDoc's sidebar shows the vendor's logo from a CDN (no option turns
# it off): `img-src` keeps that request inside the browser.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


class _StrictCspMixin:
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response


class ApiDocsSwaggerView(_StrictCspMixin, SpectacularSwaggerSplitView):
    """GET /api/v1/docs: Swagger UI (its start-up script is `GET /api/v1/docs?script`)."""


class ApiDocsRedocView(_StrictCspMixin, SpectacularRedocView):
    """GET /api/v1/redoc: ReDoc, without the Google Fonts links of drf-spectacular's template."""

    template_name = "api/redoc.html"
