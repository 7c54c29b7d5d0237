"""The portal's single point of tenant resolution and access control."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.portal import SESSION_TENANT_KEY, Portal, PortalView
from netia.tenancy import tenant_connection
from tenants.selectors import portal_membership_get

PORTAL_PREFIX = "/portal/"


class PortalMiddleware:
    """For every /portal/ path: a signed-in member of a business, or no entry.

    Resolves the business once per request from the session's choice, re-checked against the user's
    memberships (a removed member loses access at once), enters its schema, and lets a view run only if it
    is a PortalView that allows the member's role. Anything else under /portal/ is denied: access is never
    something a view can forget to check.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.portal = None  # type: ignore[attr-defined]
        if request.path.startswith(PORTAL_PREFIX):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership, memberships = portal_membership_get(
                user=request.user,
                tenant_id=request.session.get(SESSION_TENANT_KEY),
            )
            if membership is None:
                return render(request, "dashboard/no_business.html", status=403)
            if request.session.get(SESSION_TENANT_KEY) != membership.tenant_id:
                request.session[SESSION_TENANT_KEY] = membership.tenant_id
            request.portal = Portal(membership=membership, memberships=memberships)  # type: ignore[attr-defined]
            tenant_connection().set_tenant(membership.tenant)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        portal: Portal | None = getattr(request, "portal", None)
        if portal is None:
            return None
        view_class = getattr(view_func, "view_class", None)
        if not (isinstance(view_class, type) and issubclass(view_class, PortalView)):
            return render(request, "dashboard/forbidden.html", {"reason": "not_portal"}, status=403)
        if portal.role not in view_class.roles:
            return render(request, "dashboard/forbidden.html", {"reason": "owners_only"}, status=403)
        return None
