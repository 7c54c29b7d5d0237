"""OpenAPI descriptions of the admin API's authentication schemes (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class StaffKeyScheme(OpenApiAuthenticationExtension):
    target_class = "staff.authentication.StaffKeyAuthentication"
    name = "staffKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ns_<prefix>_<secret>",
            "description": "A staff API key (`manage.py staff_key_create --email EMAIL --json`); it acts as its "
            "staff user, with that user's permissions.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "staff.authentication.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The staff console's session; unsafe methods also need the X-CSRFToken header.",
        }
