"""Rate limits on the shared cache (django-ratelimit), raised as our own 429 with an exact Retry-After."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.http import HttpRequest
from django_ratelimit.core import get_usage

from netia.errors import RateLimited
from netia.proxies import client_ip_get

KeyFn = Callable[[str, HttpRequest], str]


def client_ip(group: str, request: HttpRequest) -> str:
    """The client's address: the peer, or the forwarded one behind NETIA_TRUSTED_PROXIES (netia.proxies)."""
    return client_ip_get(request)


def bearer_token(group: str, request: HttpRequest) -> str:
    """A digest of the presented bearer credential (never the credential itself in cache keys)."""
    return hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()


def enforce(request: HttpRequest, *, group: str, key: KeyFn, rate: str) -> None:
    """Count this request against `rate` for its key; raise RateLimited once over the limit."""
    usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    if usage and usage["should_limit"]:
        raise RateLimited(extra={"limit": usage["limit"], "retry_after": max(1, int(usage["time_left"]))})
