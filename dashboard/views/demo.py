"""The public demo page of a business's bot: a chat box on the public chat API, no website needed."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django_tenants.utils import tenant_context

from chat.selectors import bot_configuration_get
from tenants.selectors import tenant_get_by_demo_slug


def demo(request: HttpRequest, slug: str) -> HttpResponse:
    """Anyone with the link may chat with the bot here, as on the business's site (same limits, same token)."""
    tenant = tenant_get_by_demo_slug(slug=slug)
    if tenant is None:
        raise Http404
    with tenant_context(tenant):
        bot = bot_configuration_get()
    return render(request, "dashboard/demo.html", {"tenant": tenant, "bot": bot})
