"""Request-edge middleware shared by every app."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from timeit import default_timer
from typing import Any, cast

import structlog
from asgiref.sync import iscoroutinefunction
from corsheaders import middleware as cors
from csp.constants import HEADER as CSP_HEADER
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django_prometheus import middleware as prometheus
from django_structlog import signals
from django_structlog.app_settings import app_settings
from django_structlog.middlewares import RequestMiddleware
from django_structlog.middlewares import request as request_log_module

from netia.errors import PayloadTooLarge, error_body
from netia.proxies import client_ip_get
from netia.tenancy import use_public_schema

# Paths whose bodies are JSON sent by programs; the admin and portal keep Django's own limits.
API_PATH_PREFIXES = ("/api/", "/papercups/", "/crisp/")
# The Content-Security-Policy of JSON responses: a JSON document loads nothing and is never framed.
JSON_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
# Paths only programs call, each with a credential of its own (a webhook secret or signature, an API key, a chat
# token), never with a browser's session: the webhooks and the API, except the admin API (a staff session
# authenticates it, with CSRF) and the API's HTML documentation.
MACHINE_PATH_PREFIXES = ("/papercups/", "/crisp/", "/api/")
SESSION_API_PATH_PREFIXES = ("/api/v1/admin", "/api/v1/docs", "/api/v1/redoc")


def is_machine_path(path_info: str) -> bool:
    """Whether a request to `path_info` is served without the browser-only middleware."""
    return path_info.startswith(MACHINE_PATH_PREFIXES) and not path_info.startswith(SESSION_API_PATH_PREFIXES)


_browser_only = threading.local()  # the BrowserOnlyEnd built last in this thread, for its Begin


class BrowserOnlyBegin:
    """The middleware listed between this and BrowserOnlyEnd (sessions, CSRF, authentication, messages, htmx, the
    portal) runs for browsers only: a request to a machine path goes from here straight to what follows
    BrowserOnlyEnd. None of those views reads a session or a signed-in user, and all are CSRF-exempt (they
    authenticate by token); about a fifth of the webhook ack's CPU went to that middleware.

    What protects every path stays outside the range: security headers, Content-Security-Policy, the body limit,
    the host check and Content-Length (CommonMiddleware), X-Frame-Options, request logging, metrics. The range's
    process_view hooks stay registered with the handler, so CSRF still refuses an unsafe request to a view that
    is not exempt, on every path.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        end = getattr(_browser_only, "end", None)
        if end is None:
            raise ImproperlyConfigured(
                "netia.middleware.BrowserOnlyBegin needs a BrowserOnlyEnd after it in MIDDLEWARE."
            )
        _browser_only.end = None
        self.get_response = get_response
        self.skip_to = end.get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_machine_path(request.path_info):
            return self.skip_to(request)
        return self.get_response(request)


class BrowserOnlyEnd:
    """Where the browser-only middleware ends (see BrowserOnlyBegin)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        # Django builds the chain from the innermost middleware out: this End is built before its Begin.
        self.get_response = get_response
        _browser_only.end = self

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


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
    """django-structlog's request logging (request id, client, user, `request_started`/`request_finished`), with
    the client address from `netia.proxies` (the one rate limits use) instead of django-ipware's scan of every
    forwarding header, and without building the events its logger's level drops.

    Every request still gets its id, client address and user bound for the lines logged while it runs, and a
    `request_finished` line at the level its status calls for; what is skipped is the request's description,
    the signals and the structlog call of an event that would not be written (`request_started` and 2xx at
    INFO, below the `django_structlog` logger's WARNING), unless a receiver listens to those signals.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self._async = iscoroutinefunction(self)  # django-structlog asks on every request

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        self.prepare(request)
        response = cast(HttpResponse, self.get_response(request))
        self.handle_response(request, response)
        return response

    def prepare(self, request: HttpRequest) -> None:
        if (
            app_settings.TRUST_UPSTREAM_REQUEST_ID
            or app_settings.TRUST_UPSTREAM_CORRELATION_ID
            or not app_settings.IP_LOGGING_ENABLED
            or _written(app_settings.STATUS_START_LOG_LEVEL, signals.bind_extra_request_metadata)
        ):
            super().prepare(request)
            return
        if hasattr(request, "user"):
            structlog.contextvars.bind_contextvars(request_id=str(uuid.uuid4()))
            self.bind_user_id(request)
            self.bind_ip(request)
            return
        # A machine path (see bind_user_id): its three variables bound at once.
        structlog.contextvars.bind_contextvars(request_id=str(uuid.uuid4()), user_id=None, ip=client_ip_get(request))

    def handle_response(self, request: HttpRequest, response: HttpResponse) -> None:
        if (
            hasattr(request, "_raised_exception")
            or response.streaming
            or _written(
                self._log_level_for_status_code(response.status_code), signals.bind_extra_request_finished_metadata
            )
        ):
            super().handle_response(request, response)
            return
        structlog.contextvars.clear_contextvars()

    @classmethod
    def bind_ip(cls, request: HttpRequest) -> None:
        structlog.contextvars.bind_contextvars(ip=client_ip_get(request))

    @staticmethod
    def bind_user_id(request: HttpRequest) -> None:
        if not hasattr(request, "user"):
            # A machine path (no AuthenticationMiddleware, no session) until DRF authenticates it: logged as
            # an anonymous browser's request is.
            structlog.contextvars.bind_contextvars(user_id=None)
            return
        RequestMiddleware.bind_user_id(request)


_request_logger = logging.getLogger(request_log_module.__name__)


def _written(level: int, signal: Signal) -> bool:
    """Whether django-structlog's event at `level` would be written, or a receiver wants it built anyway."""
    return bool(signal.receivers) or _request_logger.isEnabledFor(level)


class CorsMiddleware(cors.CorsMiddleware):
    """django-cors-headers' middleware, which builds `request.headers` (every META entry) to read the Origin of every
    response it may apply to. A request without one gets what it would give it (`Vary: origin` where CORS applies)
    without that; a request with one goes through django-cors-headers unchanged."""

    def add_response_headers(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if request.META.get("HTTP_ORIGIN"):
            return super().add_response_headers(request, response)
        enabled = getattr(request, "_cors_enabled", None)
        if enabled is None:
            enabled = self.is_enabled(request)
        if enabled:
            patch_vary_headers(response, ("origin",))
        return response


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


# django-prometheus' metrics that only repeat what another one counts, not recorded: the requests and responses
# "before middlewares" (each is django_http_requests_latency_including_middlewares_seconds_count), the requests by
# transport (django_http_requests_total_by_view_transport_method_total has the transport) and the responses by
# charset (always utf-8). Nothing in Netia reads them; each cost a multiprocess file write per request.
UNRECORDED_METRICS = frozenset(
    [
        "django_http_requests_before_middlewares_total",
        "django_http_responses_before_middlewares_total",
        "django_http_requests_total_by_transport",
        "django_http_responses_total_by_charset",
    ]
)


class _Unrecorded:
    """Stands for a metric in UNRECORDED_METRICS: nothing is registered, counted or exported."""

    def labels(self, *args: Any, **kwargs: Any) -> _Unrecorded:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class PrometheusMetrics(prometheus.Metrics):
    """django-prometheus' metrics, but for UNRECORDED_METRICS."""

    _instance = None  # its own instance, not django-prometheus' class's

    def register_metric(
        self, metric_cls: type, name: str, documentation: str, labelnames: Any = (), **kwargs: Any
    ) -> Any:
        if name in UNRECORDED_METRICS:
            return _Unrecorded()
        return super().register_metric(metric_cls, name, documentation, labelnames=labelnames, **kwargs)


class PrometheusBeforeMiddleware:
    """django-prometheus' first middleware: the latency including every middleware (its requests and responses
    "before middlewares" counted that latency's count again: UNRECORDED_METRICS)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.latency = PrometheusMetrics.get_instance().requests_latency_before

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = request.prometheus_before_middleware_event = default_timer()  # type: ignore[attr-defined]
        response = self.get_response(request)
        self.latency.observe(default_timer() - started)
        return response


class PrometheusAfterMiddleware(prometheus.PrometheusAfterMiddleware):
    """django-prometheus' last middleware: the same metrics and labels, each labelled child looked up once.

    prometheus_client's `labels()` validates and stringifies the labels, sorts their names and takes a lock on
    every call: about ten calls per request. The children are kept per metric and label values instead (a
    bounded set: methods, statuses, view names, template names), as prometheus_client keeps them.
    """

    metrics_cls = PrometheusMetrics

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._children: dict[tuple[Any, ...], Any] = {}

    def process_request(self, request: HttpRequest) -> None:
        """django-prometheus' own, reading the two headers it needs from META: building `request.headers` for
        them cost more than the metrics they feed. (Its requests by transport: UNRECORDED_METRICS.)"""
        self.label_metric(self.metrics.requests_by_method, request, method=self._method(request)).inc()
        if request.META.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            self.metrics.requests_ajax.inc()
        self.metrics.requests_body_bytes.observe(int(request.META.get("CONTENT_LENGTH") or 0))
        request.prometheus_after_middleware_event = default_timer()  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """django-prometheus' own, the view's name found once (its responses by charset: UNRECORDED_METRICS)."""
        method = self._method(request)
        name = self._get_view_name(request)
        status = str(response.status_code)
        self.label_metric(self.metrics.responses_by_status, request, response, status=status).inc()
        self.label_metric(
            self.metrics.responses_by_status_view_method, request, response, status=status, view=name, method=method
        ).inc()
        if getattr(response, "streaming", False):
            self.metrics.responses_streaming.inc()
        content = getattr(response, "content", None)  # a property: joined on every read
        if content is not None:
            self.metrics.responses_body_bytes.observe(len(content))
        started = getattr(request, "prometheus_after_middleware_event", None)
        if started is not None:
            self.label_metric(
                self.metrics.requests_latency_by_view_method, request, response, view=name, method=request.method
            ).observe(default_timer() - started)
        else:
            self.metrics.requests_unknown_latency.inc()
        return response

    def label_metric(self, metric: Any, request: HttpRequest, response: Any = None, **labels: Any) -> Any:
        if not labels:
            return metric
        key = (metric, *labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**labels)
        return child
