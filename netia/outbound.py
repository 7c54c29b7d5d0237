"""Outbound HTTP to URLs a tenant can influence (a self-hosted Papercups, later channels): the SSRF guard.

Netia calls such URLs from inside the deployment and tells the tenant what happened, so without care a
tenant could make it reach the metadata service, the database or anything else on the private network.
Every call goes through `request()`:

- the host is resolved once and every address must be public (no loopback, private, link-local, shared,
  multicast, reserved or unspecified address), unless its `host:port` is in the operator's allow-list
  NETIA_OUTBOUND_ALLOWED_HOSTS (a self-hosted server on the private network, tests' local fakes);
- the connection goes to the address that was checked (pinned: no second lookup a DNS rebinding could
  answer differently), with the original host name for the Host header, TLS SNI and certificate checks;
- https only when NETIA_OUTBOUND_HTTPS_ONLY (production); no redirects; the response is capped in size
  (NETIA_OUTBOUND_MAX_RESPONSE_BYTES) and in total time;
- failures are `OutboundError`s with a stable `category` to show the tenant, never the remote body.

`url_check()` applies the same address rules when a URL is saved.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundError(Exception):
    """A refused or failed outbound call. `category` is stable and safe to show; `retryable` says if later may help."""

    CATEGORIES = {
        "invalid_url": "The URL is not a valid http(s) URL.",
        "insecure_url": "Only https URLs are allowed.",
        "dns_failure": "The host name could not be resolved.",
        "blocked_address": "The host resolves to a private or reserved address.",
        "unreachable": "The server could not be reached.",
        "timeout": "The server did not answer in time.",
        "tls_error": "The server's TLS certificate could not be verified.",
        "redirect": "The server answered with a redirect, which is not followed.",
        "response_too_large": "The server's answer was too large.",
    }

    def __init__(self, category: str, *, retryable: bool = False, detail: str = "") -> None:
        super().__init__(f"{category}: {detail}" if detail else category)
        self.category = category
        self.retryable = retryable
        self.detail = detail  # for logs only (may name addresses); never shown to tenants

    @property
    def message(self) -> str:
        return self.CATEGORIES.get(self.category, "The outbound call failed.")


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the pinned address) and what to call it (host, port)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str
    query: str


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: dict[str, str]
    content: bytes


def _allow_listed(host: str, port: int) -> bool:
    entries = {entry.strip().lower() for entry in settings.NETIA_OUTBOUND_ALLOWED_HOSTS if entry.strip()}
    return f"{host.lower()}:{port}" in entries


def url_allow_listed(url: str) -> bool:
    """Whether the URL's `host:port` is in NETIA_OUTBOUND_ALLOWED_HOSTS (the operator vouches for it)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return False
    return bool(parts.hostname) and _allow_listed((parts.hostname or "").rstrip("."), port)


def address_is_public(address: str) -> bool:
    """Whether an IP is a public unicast address (IPv4-mapped IPv6 judged as the IPv4 it maps)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_private
    )


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError("dns_failure", retryable=True, detail=str(exc)) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OutboundError("dns_failure", retryable=True, detail="no address")
    return addresses


def target_resolve(url: str) -> Target:
    """Check `url` and resolve its host: raises OutboundError unless every address may be called."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        raise OutboundError("invalid_url") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        raise OutboundError("invalid_url")
    if settings.NETIA_OUTBOUND_HTTPS_ONLY and parts.scheme != "https":
        raise OutboundError("insecure_url")
    addresses = _resolve(host, port)
    if not _allow_listed(host, port) and not all(address_is_public(a) for a in addresses):
        raise OutboundError("blocked_address", detail=f"{host} resolves to {', '.join(addresses)}")
    return Target(parts.scheme, host, port, addresses[0], parts.path, parts.query)


def url_check(url: str) -> None:
    """Raise OutboundError if `url` may not be called (for validating a URL when it is saved)."""
    target_resolve(url)


class _PinnedAdapter(HTTPAdapter):
    """Connects to the URL's (IP) host while TLS uses `server_hostname` for SNI and the certificate check."""

    def __init__(self, server_hostname: str) -> None:
        self._server_hostname = server_hostname
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs.update(server_hostname=self._server_hostname, assert_hostname=self._server_hostname)
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json: Any = None,
    timeout: float,
    max_bytes: int | None = None,
) -> OutboundResponse:
    """One guarded call (see the module docstring); `timeout` bounds connecting and the whole answer."""
    target = target_resolve(url)
    limit = settings.NETIA_OUTBOUND_MAX_RESPONSE_BYTES if max_bytes is None else max_bytes
    ip_host = f"[{target.address}]" if ":" in target.address else target.address
    pinned_url = urlunsplit((target.scheme, f"{ip_host}:{target.port}", target.path or "/", target.query, ""))
    host_header = target.host if target.port == _DEFAULT_PORTS[target.scheme] else f"{target.host}:{target.port}"
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc from the environment
        session.mount(f"{target.scheme}://", _PinnedAdapter(target.host))
        try:
            response = session.request(
                method,
                pinned_url,
                headers={**(headers or {}), "Host": host_header},
                params=params,
                json=json,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.SSLError as exc:
            raise OutboundError("tls_error", detail=str(exc)) from None
        except requests.Timeout as exc:
            raise OutboundError("timeout", retryable=True, detail=str(exc)) from None
        except requests.RequestException as exc:
            raise OutboundError("unreachable", retryable=True, detail=type(exc).__name__) from None
        with response:
            if 300 <= response.status_code < 400:
                raise OutboundError("redirect", detail=str(response.headers.get("Location", ""))[:200])
            body = bytearray()
            try:
                for chunk in response.iter_content(chunk_size=16384):
                    body.extend(chunk)
                    if len(body) > limit:
                        raise OutboundError("response_too_large", detail=f"over {limit} bytes")
                    if time.monotonic() > deadline:
                        raise OutboundError("timeout", retryable=True, detail="the answer took too long")
            except requests.RequestException as exc:
                raise OutboundError("timeout", retryable=True, detail=type(exc).__name__) from None
            return OutboundResponse(response.status_code, dict(response.headers), bytes(body))
