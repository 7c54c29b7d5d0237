"""Forwarded headers count only from NETIA_TRUSTED_PROXIES: client addresses for rate limits, HTTPS detection."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from netia.proxies import client_ip_get

LB = "10.0.0.5"


def post(client, tenant, remote, forwarded=None, **extra):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return client.post(
        "/api/v1/chat",
        {"message": "hi"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
        REMOTE_ADDR=remote,
        **headers,
        **extra,
    )


def test_without_trusted_proxies_a_forged_forwarded_for_does_not_change_the_bucket(client, tenant, settings):
    settings.CHAT_RATE_PER_IP = "2/m"
    settings.NETIA_TRUSTED_PROXIES = []

    statuses = [post(client, tenant, "198.51.100.7", f"203.0.113.{n}").status_code for n in range(3)]

    assert statuses == [200, 200, 429]


def test_behind_a_trusted_load_balancer_visitors_do_not_share_one_bucket(client, tenant, settings):
    settings.CHAT_RATE_PER_IP = "2/m"
    settings.NETIA_TRUSTED_PROXIES = ["10.0.0.0/24"]

    visitors = [post(client, tenant, LB, f"203.0.113.{n}").status_code for n in range(3)]
    one_visitor = [post(client, tenant, LB, "198.51.100.9").status_code for _ in range(3)]

    assert visitors == [200, 200, 200]
    assert one_visitor == [200, 200, 429]


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("198.51.100.7", "203.0.113.1", "198.51.100.7"),  # peer is not a proxy: header ignored
        (LB, "203.0.113.1", "203.0.113.1"),
        (LB, "1.2.3.4, 203.0.113.1", "203.0.113.1"),  # the client prepended a fake hop
        (LB, "203.0.113.1, 10.0.0.9", "203.0.113.1"),  # two trusted proxies in a row
        (LB, "", LB),
    ],
)
def test_client_ip_is_the_last_untrusted_hop(settings, remote, forwarded, expected):
    settings.NETIA_TRUSTED_PROXIES = ["10.0.0.0/24"]
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip_get(request) == expected


@pytest.mark.parametrize(("remote", "status"), [("198.51.100.7", 301), (LB, 200)])
def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(client, db, settings, remote, status):
    settings.NETIA_TRUSTED_PROXIES = ["10.0.0.0/24"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == status
