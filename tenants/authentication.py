"""DRF authentication that resolves the tenant from a credential and enters its schema."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from netia.errors import AuthenticationFailed, PermissionDenied
from netia.tenancy import tenant_connection
from netia.versioned_cache import Prefetched
from tenants.models import ApiKey, Tenant
from tenants.selectors import TenantGuess, tenant_get_by_chat_token
from tenants.services import api_key_authenticate


def _bearer(request: Request | HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
    return header[7:].strip()


class ChatTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <chat token>`: the tenant's public token. Grants chatting, nothing more.

    `request.auth` is the Tenant; there is no user. A suspended tenant's token still authenticates: the chat
    then answers 402 `tenant_suspended`, like every other reason the bot may not answer.
    """

    def authenticate(self, request: Request) -> tuple[None, Tenant]:
        return None, chat_token_authenticate(request)

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


def chat_token_authenticate(
    request: Request | HttpRequest, *, prefetched: Prefetched | None = None, guess: TenantGuess | None = None
) -> Tenant:
    """The tenant whose chat token the request bears, its schema entered; AuthenticationFailed otherwise.

    `prefetched`: the tenant cache's version read in this request (`tenants.selectors.tenant_lookup_cache_keys`);
    `guess`: `tenants.selectors.tenant_chat_token_guess`'s for the token, taken when still current.
    """
    tenant = tenant_get_by_chat_token(token=_bearer(request), prefetched=prefetched, guess=guess)
    if tenant is None:
        raise AuthenticationFailed("Unknown chat token.")
    tenant_connection().set_tenant(tenant)
    return tenant


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer nk_…`: a tenant's secret API key. `request.auth` is the ApiKey."""

    def authenticate(self, request: Request) -> tuple[None, ApiKey]:
        api_key = api_key_authenticate(raw_key=_bearer(request))
        tenant_connection().set_tenant(api_key.tenant)
        return None, api_key

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


def require_permission(api_key: Any, permission: str) -> None:
    """Raise PermissionDenied unless the API key carries `permission`."""
    if not isinstance(api_key, ApiKey) or permission not in api_key.permissions:
        raise PermissionDenied("This API key lacks the permission.", extra={"required": permission})


class HasApiKeyPermission(BasePermission):
    """Allows a request when its API key carries the permission the view names for the method.

    Views declare `required_permissions = {"GET": "leads:read", "PATCH": "leads:write"}`.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        permission = getattr(view, "required_permissions", {}).get(request.method)
        if permission is None:
            return request.method == "OPTIONS"
        require_permission(request.auth, permission)
        return True
