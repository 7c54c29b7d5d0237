"""One error hierarchy for the whole platform, mapped to JSON in one place.

Every API error has the shape {"error": {"code": str, "message": str, "details": dict}}.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views import csrf
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf_exceptions
from rest_framework.compat import LONG_SEPARATORS, SHORT_SEPARATORS
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class ApplicationError(Exception):
    """A failure the client can understand: it carries an HTTP status, a stable code and a message."""

    status_code = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, extra: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.extra = extra or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    status_code = 400
    code = "invalid"
    default_message = "The request is invalid."


class AuthenticationFailed(ApplicationError):
    status_code = 401
    code = "unauthenticated"
    default_message = "Missing or invalid credentials."


class PaymentRequired(ApplicationError):
    status_code = 402
    code = "payment_required"
    default_message = "The subscription is not active."


class PlanLimitExceeded(PaymentRequired):
    code = "plan_limit_reached"
    default_message = "The plan's limit is reached. Upgrade the plan to add more."


class PermissionDenied(ApplicationError):
    status_code = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class CsrfFailed(PermissionDenied):
    """A session-authenticated write without a valid CSRF token (Django's middleware or DRF's session check)."""

    code = "csrf_failed"
    default_message = "CSRF verification failed. Send the X-CSRFToken header with the csrftoken cookie's value."


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(ApplicationError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class RateLimited(ApplicationError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests. Retry later."


class ServiceUnavailable(ApplicationError):
    status_code = 503
    code = "service_unavailable"
    default_message = "A service this request needs is unavailable. Retry later."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


# django-ratelimit's decorator and middleware do not say when their window ends: clients are told to wait this
# long (the longest period of the limits in use is a minute). `netia.ratelimits` gives the exact wait instead.
RATELIMIT_RETRY_SECONDS = 60


def rate_limited_reply(retry_after: int = RATELIMIT_RETRY_SECONDS) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers of a 429 (one place for both, and for the seconds they repeat)."""
    body = error_body(RateLimited.code, RateLimited.default_message, {"retry_after": retry_after})
    return body, {"Retry-After": str(retry_after)}


def _drf_details(exc: drf_exceptions.APIException) -> dict[str, Any]:
    detail = exc.detail
    if isinstance(detail, dict):
        return {"fields": detail}
    if isinstance(detail, list):
        return {"errors": detail}
    return {}


_DRF_CODES: dict[type[drf_exceptions.APIException], tuple[str, str]] = {
    drf_exceptions.ValidationError: ("invalid", "The request is invalid."),
    drf_exceptions.ParseError: ("malformed", "The request body is not valid JSON."),
    drf_exceptions.NotAuthenticated: ("unauthenticated", "Missing or invalid credentials."),
    drf_exceptions.AuthenticationFailed: ("unauthenticated", "Missing or invalid credentials."),
    drf_exceptions.PermissionDenied: ("forbidden", "You are not allowed to do this."),
    drf_exceptions.NotFound: ("not_found", "Not found."),
    drf_exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed."),
    drf_exceptions.UnsupportedMediaType: ("unsupported_media_type", "Send a JSON body."),
    drf_exceptions.Throttled: ("rate_limited", "Too many requests. Retry later."),
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: map every known failure to the error shape; unknown ones stay 500."""
    reply = _error_reply(exc)
    if reply is None:
        return None
    body, status, headers = reply
    return Response(body, status=status, headers=headers)


def api_error_response(exc: Exception) -> HttpResponse | None:
    """The response `api_exception_handler` gives `exc`, rendered as DRF renders it, for a view serving a
    request without DRF's machinery (the webhook acks); None for an unexpected exception (left to the 500)."""
    reply = _error_reply(exc)
    if reply is None:
        return None
    body, status, headers = reply
    return HttpResponse(json_rendered(body), status=status, headers=headers, content_type="application/json")


# DRF's JSONRenderer's encoder as it configures one for a response without `indent` (its class attributes are read
# once, at import, as DRF reads them), made once.
_JSON_ENCODER = JSONRenderer.encoder_class(
    ensure_ascii=JSONRenderer.ensure_ascii,
    allow_nan=not JSONRenderer.strict,
    separators=SHORT_SEPARATORS if JSONRenderer.compact else LONG_SEPARATORS,
)


def json_rendered(body: Any) -> bytes:
    """`JSONRenderer().render(body)`: the bytes DRF renders a Response's data as (no media type parameters)."""
    if body is None:
        return b""
    return _JSON_ENCODER.encode(body).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def json_served_directly(answer: Callable[[], Any], *, allow: str) -> HttpResponse:
    """`answer()`'s JSON rendered as DRF renders a Response, or its known failure as `api_exception_handler`
    answers it, for a view serving a request without DRF's machinery (the webhook acks, the chat POST). Every
    answer carries `Allow`, as DRF's do; an unexpected exception propagates (the 500)."""
    try:
        body = answer()
    except Exception as exc:
        response = api_error_response(exc)
        if response is None:
            raise
        response["Allow"] = allow
        return response
    return HttpResponse(json_rendered(body), content_type="application/json", headers={"Allow": allow})


def _error_reply(exc: Exception) -> tuple[dict[str, Any], int, dict[str, str]] | None:
    """The error body, status and headers of a known failure; None for any other exception."""
    if isinstance(exc, ApplicationError):
        headers = {}
        if isinstance(exc, RateLimited) and "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
        return error_body(exc.code, exc.message, exc.extra), exc.status_code, headers
    if isinstance(exc, Ratelimited):
        body, headers = rate_limited_reply()
        return body, RateLimited.status_code, headers
    if isinstance(exc, RequestDataTooBig):
        return error_body(PayloadTooLarge.code, PayloadTooLarge.default_message), 413, {}
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        code, message = next(
            (pair for cls, pair in _DRF_CODES.items() if isinstance(exc, cls)),
            (str(exc.default_code), str(exc.default_detail)),
        )
        if isinstance(exc, drf_exceptions.MethodNotAllowed | drf_exceptions.ParseError):
            message = str(exc.detail)
        headers = {}
        auth_header = getattr(exc, "auth_header", None)  # set by DRF from the first authenticator's scheme
        if auth_header:
            headers["WWW-Authenticate"] = str(auth_header)
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(int(wait) + 1)
        status = exc.status_code
        if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            status = 401
        return error_body(code, message, _drf_details(exc)), status, headers
    return None


def ratelimited_view(request: HttpRequest, exception: Exception) -> JsonResponse:
    """django-ratelimit's view for limits hit outside DRF."""
    body, headers = rate_limited_reply()
    return JsonResponse(body, status=RateLimited.status_code, headers=headers)


@csrf_exempt
def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """404 for paths no view matched (whatever the method: nothing is written)."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_method_not_allowed(request: HttpRequest, allowed: list[str]) -> JsonResponse:
    """405 for plain Django views under /api/."""
    return JsonResponse(
        error_body("method_not_allowed", f'Method "{request.method}" not allowed.'),
        status=405,
        headers={"Allow": ", ".join(allowed)},
    )


def read_only_api(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Only GET and HEAD reach `view`; other methods get the JSON 405 (views rendering HTML or YAML would
    answer them in their own format)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD"):
            return json_method_not_allowed(request, ["GET", "HEAD"])
        return view(request, *args, **kwargs)

    # No session-authenticated writes happen here: the CSRF check would only turn the 405 into an HTML 403.
    return csrf_exempt(wrapped)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under the API paths, Django's page elsewhere (the admin)."""
    if request.path.startswith(("/api/", "/papercups/")):
        return JsonResponse(error_body(CsrfFailed.code, CsrfFailed.default_message), status=CsrfFailed.status_code)
    return csrf.csrf_failure(request, reason=reason)


def json_server_error(request: HttpRequest) -> JsonResponse:
    """500 without internals."""
    return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """400 raised by Django itself (bad host, suspicious operation)."""
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)
