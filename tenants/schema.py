"""OpenAPI descriptions of Netia's authentication schemes (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ChatTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ChatTokenAuthentication"
    name = "chatToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The tenant's public chat token (its Papercups account id once connected).",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "nk_<prefix>_<secret>",
            "description": "A tenant API key; each endpoint needs one permission (e.g. knowledge:write).",
        }
