"""netia.outbound, the SSRF guard: what a tenant-influenced URL may reach, checked at save and at connect.

Refused addresses are refused before any packet leaves; the allowed calls go to local fake servers only.
"""

from __future__ import annotations

import socket

import pytest

from netia import outbound
from netia.outbound import OutboundError
from tests.fakes.base import FakeServer, Reply


@pytest.fixture
def server(settings):
    with FakeServer() as fake:
        fake.route("GET", "/ok", lambda request: Reply(200, {"ok": True}))
        fake.route("GET", "/big", lambda request: Reply(200, raw=b"x" * 5000))
        fake.route("GET", "/redirect", lambda request: Reply(302, headers={"Location": "http://169.254.169.254/"}))
        fake.route("GET", "/slow", lambda request: Reply(200, {"late": True}, delay=2.0))
        settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{fake.url.rsplit(':', 1)[1]}"]
        settings.NETIA_OUTBOUND_HTTPS_ONLY = False
        yield fake


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://localhost/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://192.168.1.10/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # shared address space (carrier-grade NAT)
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://240.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
    ],
)
def test_private_loopback_link_local_multicast_and_reserved_addresses_are_refused(settings, url):
    settings.NETIA_OUTBOUND_ALLOWED_HOSTS = []
    settings.NETIA_OUTBOUND_HTTPS_ONLY = False

    with pytest.raises(OutboundError) as excinfo:
        outbound.url_check(url)

    assert excinfo.value.category == "blocked_address"
    assert excinfo.value.message == "The host resolves to a private or reserved address."


@pytest.mark.parametrize(
    ("url", "category"),
    [
        ("ftp://example.com/", "invalid_url"),
        ("http://user:pass@example.com/", "invalid_url"),
        ("http://:80/", "invalid_url"),
        ("http://no-such-host.invalid/", "dns_failure"),
    ],
)
def test_malformed_and_unresolvable_urls_are_refused(settings, url, category):
    settings.NETIA_OUTBOUND_HTTPS_ONLY = False

    with pytest.raises(OutboundError) as excinfo:
        outbound.url_check(url)

    assert excinfo.value.category == category


def test_https_is_required_in_production(settings, server):
    settings.NETIA_OUTBOUND_HTTPS_ONLY = True

    with pytest.raises(OutboundError) as excinfo:
        outbound.request("GET", f"{server.url}/ok", timeout=2)

    assert excinfo.value.category == "insecure_url"
    assert server.requests == []


def test_an_allow_listed_private_host_is_called(server):
    response = outbound.request("GET", f"{server.url}/ok", params={"a": "1"}, timeout=2)

    assert (response.status, response.content) == (200, b'{"ok": true}')
    assert server.requests[0].query == {"a": ["1"]}


def test_the_allow_list_names_a_port_not_a_whole_host(server, settings):
    settings.NETIA_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1:1"]

    with pytest.raises(OutboundError) as excinfo:
        outbound.request("GET", f"{server.url}/ok", timeout=2)

    assert excinfo.value.category == "blocked_address"
    assert server.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(server, settings, monkeypatch):
    """DNS rebinding: a second lookup would answer another address; the call never looks again."""
    port = int(server.url.rsplit(":", 1)[1])
    settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [f"papercups.test:{port}"]
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def rebinding_dns(host, *args, **kwargs):
        if host == "papercups.test":
            lookups.append(host)
            # First answer: the allow-listed local server; any later one: a closed loopback port's address.
            return real_getaddrinfo("127.0.0.1" if len(lookups) == 1 else "127.0.0.2", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)

    response = outbound.request("GET", f"http://papercups.test:{port}/ok", timeout=2)

    assert response.status == 200
    assert lookups == ["papercups.test"]
    assert server.requests[0].headers["host"] == f"papercups.test:{port}"


def test_redirects_are_not_followed(server):
    with pytest.raises(OutboundError) as excinfo:
        outbound.request("GET", f"{server.url}/redirect", timeout=2)

    assert excinfo.value.category == "redirect"
    assert [r.path for r in server.requests] == ["/redirect"]


def test_the_response_size_is_capped(server):
    with pytest.raises(OutboundError) as excinfo:
        outbound.request("GET", f"{server.url}/big", timeout=2, max_bytes=1000)

    assert excinfo.value.category == "response_too_large"


def test_a_slow_server_times_out(server):
    with pytest.raises(OutboundError) as excinfo:
        outbound.request("GET", f"{server.url}/slow", timeout=0.3)

    assert (excinfo.value.category, excinfo.value.retryable) == ("timeout", True)


def test_an_unreachable_server_is_reported_as_such(settings):
    settings.NETIA_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1:9"]
    settings.NETIA_OUTBOUND_HTTPS_ONLY = False

    with pytest.raises(OutboundError) as excinfo:
        outbound.request("GET", "http://127.0.0.1:9/", timeout=2)

    assert (excinfo.value.category, excinfo.value.retryable) == ("unreachable", True)
