"""Request-edge middleware shared by every app."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from csp.constants import HEADER as CSP_HEADER
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django_structlog.middlewares import RequestMiddleware

from netia.errors import PayloadTooLarge, error_body
from netia.proxies import client_ip_get
from netia.tenancy import use_public_schema

# Paths whose bodies are JSON sent by programs; the admin and portal keep Django's own limits.
API_PATH_PREFIXES = ("/api/", "/papercups/", "/crisp/")
# The Content-Security-Policy of JSON responses: a JSON document loads nothing and is never framed.
JSON_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"


class PublicSchemaMiddleware:
    """Start every request in the public schema.

    Netia resolves the tenant from a credential (chat token, API key, webhook secret, portal membership),
    never from the host name, so each request begins in `public` and the authentication layer switches
    to the tenant's schema. This also undoes a schema a previous request left on a reused connection.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        use_public_schema()
        try:
            return self.get_response(request)
        finally:
            use_public_schema()


class BodySizeLimitMiddleware:
    """Refuse oversized API bodies with 413 before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PATH_PREFIXES):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.API_MAX_BODY_BYTES
            if length > limit:
                return JsonResponse(
                    error_body(PayloadTooLarge.code, PayloadTooLarge.default_message, {"max_bytes": limit}),
                    status=413,
                )
        return self.get_response(request)


class RequestLogMiddleware(RequestMiddleware):
    """django-structlog's request logging (request id, user, `request_started`/`request_finished`), with the
    client address from `netia.proxies`: the one rate limits use (forwarded headers only from trusted proxies),
    instead of django-ipware's scan of every forwarding header on each request (a tenth of the webhook ack's CPU).
    """

    @classmethod
    def bind_ip(cls, request: HttpRequest) -> None:
        structlog.contextvars.bind_contextvars(ip=client_ip_get(request))


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with one fixed policy for JSON responses (the API's, webhooks' and errors').

    Pages get the policy of CONTENT_SECURITY_POLICY, built per response because a page may use the request's
    nonce. A JSON response runs no script: it gets JSON_CONTENT_SECURITY_POLICY, stricter than any page's, as
    a constant (django-csp would build the page policy for it on every response), unless it set its own or
    is exempted. With a report-only policy configured, every response goes through django-csp.
    """

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not response.get("Content-Type", "").startswith("application/json") or getattr(
            settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None
        ):
            return super().process_response(request, response)
        if CSP_HEADER not in response and not getattr(response, "_csp_exempt", False):
            response[CSP_HEADER] = JSON_CONTENT_SECURITY_POLICY
        return response
