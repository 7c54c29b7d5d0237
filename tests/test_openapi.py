"""Every API endpoint is in the OpenAPI schema, which generates without errors or warnings."""

from __future__ import annotations

from io import StringIO

import yaml
from django.core.management import call_command
from django.urls import URLResolver, get_resolver


def _routes(patterns, prefix: str = "") -> set[str]:
    routes = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            routes |= _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            routes.add("/" + prefix + str(pattern.pattern))
    return routes


def _api_routes() -> set[str]:
    return {route for route in _routes(get_resolver().url_patterns) if route.startswith("/api/v1/")}


def test_schema_is_valid_and_documents_every_api_route(db):
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = yaml.safe_load(out.getvalue())

    documented = {path.replace("{", "<").replace("}", ">") for path in schema["paths"]}
    expected = {
        route.replace("<int:", "<").replace("<uuid:", "<")
        for route in _api_routes()
        if not route.endswith(("/schema", "/docs", "/redoc", "/metrics"))
    }
    assert expected - documented == set()
    assert "/api/v1/chat" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
