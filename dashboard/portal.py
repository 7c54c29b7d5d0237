"""The portal's request context and base view: who is signed in, in which business, with which role.

`PortalMiddleware` (dashboard.middleware) fills `request.portal` once per request for every /portal/ path;
views only declare which roles they allow. Everything is owners-only unless a view says otherwise.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django_htmx.middleware import HtmxDetails

from billing.selectors import BotAccess, bot_access_get
from netia import ratelimits
from netia.errors import ApplicationError
from tenants.audit import Actor
from tenants.models import Membership, Tenant, User
from tenants.selectors import tenant_demo_slug

OWNER = Membership.Role.OWNER.value
MEMBER = Membership.Role.MEMBER.value
OWNERS_ONLY = frozenset({OWNER})
TEAM = frozenset({OWNER, MEMBER})
SESSION_TENANT_KEY = "portal_tenant_id"


class Portal:
    """The signed-in person's current business (`tenant`), their role in it, and their other businesses."""

    def __init__(self, *, membership: Membership, memberships: list[Membership]) -> None:
        self.membership = membership
        self.memberships = memberships

    @property
    def tenant(self) -> Tenant:
        return self.membership.tenant

    @property
    def user(self) -> User:
        return self.membership.user

    @property
    def role(self) -> str:
        return self.membership.role

    @property
    def is_owner(self) -> bool:
        return self.role == OWNER

    @property
    def demo_slug(self) -> str:
        return tenant_demo_slug(tenant=self.tenant)

    @cached_property
    def bot_access(self) -> BotAccess:
        """Whether the bot answers right now (every page says why not)."""
        return bot_access_get(tenant=self.tenant)


def paginated(request: HttpRequest, items: Any, size: int = 25) -> dict[str, Any]:
    """The requested page of `items` and the other query parameters (for the pages' links)."""
    query = request.GET.copy()
    query.pop("page", None)
    return {"page": Paginator(items, size).get_page(request.GET.get("page")), "query": query.urlencode()}


class PortalRequest(HttpRequest):
    portal: Portal
    htmx: HtmxDetails


class PortalView(View):
    """Base of every /portal/ view. `roles` lists who may open it: owners only unless the view says more.

    Application errors a POST raises become a message on the page it came from, so a view handles only the
    errors it can show beside a field.
    """

    roles: ClassVar[frozenset[str]] = OWNERS_ONLY
    request: PortalRequest

    @property
    def portal(self) -> Portal:
        return self.request.portal

    @property
    def tenant(self) -> Tenant:
        return self.request.portal.tenant

    @property
    def actor(self) -> Actor:
        """Who acts, for the audit trail: the signed-in member."""
        return Actor.member(self.request.portal.user)

    @property
    def client_ip(self) -> str:
        return ratelimits.client_ip("audit", self.request)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return cast(HttpResponse, super().dispatch(request, *args, **kwargs))
        except ApplicationError as error:
            if request.method == "GET":
                raise
            messages.error(request, error.message)
            if getattr(request, "htmx", False):  # reload the page the request came from, message included
                return HttpResponse(status=204, headers={"HX-Refresh": "true"})
            return HttpResponseRedirect(self.back_url())

    def back_url(self) -> str:
        """The page a form was posted from (same site only), else this view's path."""
        referer = self.request.headers.get("Referer", "")
        if url_has_allowed_host_and_scheme(referer, allowed_hosts={self.request.get_host()}):
            return referer
        return self.request.path

    def page(self, template: str, context: dict[str, Any] | None = None, status: int = 200) -> HttpResponse:
        return render(self.request, template, context or {}, status=status)
