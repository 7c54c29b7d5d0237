"""Billing fixtures: the fake Stripe server with the real stripe client (and dj-stripe) pointed at it, the
webhook endpoint registered through Netia's command, signed deliveries, plans synced from the fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from djstripe.models import WebhookEndpoint

from billing.models import Plan
from billing.services import trial_extend
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tenants.services import api_key_create
from tests.fakes.stripe_server import FakeStripe, signed_request

STRIPE_KEY = "sk_test_" + "NetiaBillingTests0123456789"


@pytest.fixture
def stripe_fake(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    """A fresh fake Stripe requiring Netia's key; billing is on and every Stripe call goes to the fake."""
    server = FakeStripe(api_key=STRIPE_KEY)
    server.start()
    settings.STRIPE_SECRET_KEY = STRIPE_KEY
    settings.BILLING_RETURN_URL = "https://portal.netia.test/billing"
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield server
    server.stop()


@dataclass
class Webhooks:
    """Netia's registered Stripe endpoint; `post` delivers an event signed exactly as Stripe signs it."""

    client: Client
    path: str
    secret: str

    def post(self, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None) -> Any:
        body, signature = signed_request(event, secret or self.secret, timestamp)
        return self.client.post(
            self.path, body, content_type="application/json; charset=utf-8", HTTP_STRIPE_SIGNATURE=signature
        )

    def post_all(self, events: list[dict[str, Any]]) -> list[int]:
        return [self.post(event).status_code for event in events]


@pytest.fixture
def webhooks(db: None, stripe_fake: FakeStripe, client: Client) -> Webhooks:
    """The endpoint as `manage.py billing_webhook_create` registers it in Stripe (the fake)."""
    call_command("billing_webhook_create", "--base-url", "https://netia.test", stdout=StringIO())
    endpoint = WebhookEndpoint.objects.get()
    return Webhooks(client=client, path=endpoint.url.removeprefix("https://netia.test"), secret=endpoint.secret)


@pytest.fixture
def pro_plan(db: None, stripe_fake: FakeStripe) -> Plan:
    """A "Pro" product + monthly price in Stripe, synced and mapped by `manage.py billing_sync_plans`."""
    stripe_fake.seed_product_with_price(
        "Pro",
        1900,
        "eur",
        "month",
        {"netia_plan": "pro", "ai_replies_per_month": "1000", "knowledge_articles_max": "200", "team_seats": "5"},
    )
    call_command("billing_sync_plans", stdout=StringIO())
    return Plan.objects.select_related("price").get(code="pro")


@pytest.fixture
def billing_key(tenant: Tenant) -> str:
    """A raw API key of tenant A carrying only the billing permission."""
    _, raw = api_key_create(tenant=tenant, name="Billing", permissions=["billing"], actor=SYSTEM)
    return raw


@pytest.fixture
def api(client: Client, billing_key: str) -> Callable[..., Any]:
    """Call the billing API as tenant A: api("get"|"post", path, body=None)."""

    def call(method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key or billing_key}"}
        url = f"/api/v1/customer/billing{path}"
        if method == "get":
            return client.get(url, headers=headers)
        return client.post(url, body or {}, content_type="application/json", headers=headers)

    return call


@pytest.fixture
def subscribe(api: Callable[..., Any], tenant: Tenant, pro_plan: Plan, stripe_fake: FakeStripe) -> Callable[..., Any]:
    """Check out the Pro plan as tenant A and let the fake complete it; returns the events Stripe emits.

    By default Netia's trial is over first, so the subscription starts active (else it starts trialing).
    """

    def run(*, trial_over: bool = True) -> list[dict[str, Any]]:
        if trial_over:
            trial_extend(tenant=tenant, until=timezone.now() - timedelta(minutes=1), actor=SYSTEM)
        session = api("post", "/checkout", {"plan_id": pro_plan.pk}).json()
        stripe_fake.take_events()
        return stripe_fake.complete_checkout(session["id"])

    return run


@pytest.fixture
def subscribe_yearly(api: Callable[..., Any], tenant: Tenant, stripe_fake: FakeStripe) -> Callable[..., Any]:
    """Like `subscribe`, to a "Pro yearly" plan billed once a year."""
    stripe_fake.seed_product_with_price(
        "Pro yearly",
        19000,
        "eur",
        "year",
        {
            "netia_plan": "pro-yearly",
            "ai_replies_per_month": "1000",
            "knowledge_articles_max": "200",
            "team_seats": "5",
        },
    )
    call_command("billing_sync_plans", stdout=StringIO())
    plan = Plan.objects.get(code="pro-yearly")

    def run() -> list[dict[str, Any]]:
        trial_extend(tenant=tenant, until=timezone.now() - timedelta(minutes=1), actor=SYSTEM)
        session = api("post", "/checkout", {"plan_id": plan.pk}).json()
        stripe_fake.take_events()
        return stripe_fake.complete_checkout(session["id"])

    return run
