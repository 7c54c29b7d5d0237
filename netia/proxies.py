"""Reverse proxies: which forwarded headers to believe, and the client address rate limits count against.

Only a request whose peer (REMOTE_ADDR) is one of NETIA_TRUSTED_PROXIES may tell us the client's address
(X-Forwarded-For) or that it arrived over HTTPS (X-Forwarded-Proto). From anyone else both headers are
dropped at the edge, so a visitor cannot pick its own rate-limit bucket or fake HTTPS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ipware import get_client_ip
from python_ipware.modern.parsers import split_proxy_chain

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_FORWARDED")


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def is_trusted_proxy(address: object) -> bool:
    """Whether `address` (an IP, as text or object) is one of NETIA_TRUSTED_PROXIES."""
    entries = settings.NETIA_TRUSTED_PROXIES
    return bool(entries) and _is_in(str(address).strip(), tuple(entries))


@lru_cache(maxsize=1024)
def _is_in(address: str, entries: tuple[str, ...]) -> bool:
    """Whether `address` is in one of the networks `entries` name (each request asks for its peer at least twice)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(entries))


def client_ip_get(request: HttpRequest) -> str:
    """The client's address: the peer, or behind trusted proxies the last untrusted hop of X-Forwarded-For.

    django-ipware parses the chain; the number of trusted hops at its end (walked right to left) pins which
    entry is the client, so addresses a client prepends itself are never chosen.
    """
    peer = str(request.META.get("REMOTE_ADDR", ""))
    if not is_trusted_proxy(peer):
        return peer
    chain = split_proxy_chain(str(request.META.get("HTTP_X_FORWARDED_FOR", "")), False) or []
    trusted_hops = 0
    for hop in reversed(chain):
        if not is_trusted_proxy(hop):
            break
        trusted_hops += 1
    if not chain or trusted_hops == len(chain):
        return str(chain[0]) if chain else peer
    ip, _routable = get_client_ip(
        request,
        proxy_order="left-most",
        proxy_count=trusted_hops,
        request_header_order=["HTTP_X_FORWARDED_FOR"],
        strict=False,
    )
    return ip or peer


class TrustedProxyMiddleware:
    """Drop forwarded headers unless the request comes from a trusted proxy (first middleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_trusted_proxy(request.META.get("REMOTE_ADDR", "")):
            for header in _FORWARDED_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)
