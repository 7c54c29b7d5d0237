"""API keys (owners only): create with chosen permissions (the secret is shown once), list, revoke."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard.forms import ApiKeyForm
from dashboard.portal import PortalView
from netia.errors import ApplicationError
from tenants.models import ApiKey
from tenants.selectors import api_key_list
from tenants.services import api_key_create, api_key_revoke


class ApiKeysView(PortalView):
    template = "dashboard/api_keys.html"

    def context(self, form: ApiKeyForm | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "keys": api_key_list(tenant=self.tenant),
            "form": form or ApiKeyForm(),
            "permission_labels": dict(ApiKey.Permission.choices),
            **extra,
        }

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(self.template, self.context())


class ApiKeyCreateView(ApiKeysView):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                key, secret = api_key_create(
                    tenant=self.tenant,
                    name=form.cleaned_data["name"],
                    permissions=form.cleaned_data["permissions"],
                    actor=self.actor,
                    ip=self.client_ip,
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                # Rendered, not redirected: the secret exists only in this response.
                response = self.page(self.template, self.context(new_key=key, new_secret=secret))
                response["Cache-Control"] = "no-store"
                return response
        return self.page(self.template, self.context(form), status=400)


class ApiKeyRevokeView(PortalView):
    def post(self, request: HttpRequest, key_id: UUID) -> HttpResponse:
        key = api_key_list(tenant=self.tenant).filter(pk=key_id).first()
        if key is None:
            raise Http404
        api_key_revoke(api_key=key, actor=self.actor, ip=self.client_ip)
        messages.success(request, f"“{key.name}” is revoked: requests with it are refused from now on.")
        return redirect("dashboard:api-keys")
