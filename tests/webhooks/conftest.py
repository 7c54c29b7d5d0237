"""Channel test fixtures: the Papercups and Crisp simulators and helpers (end-to-end ones are in live/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tests.fakes.crisp_server import FakeCrisp, Website
from tests.fakes.papercups_server import Account, FakePapercups
from webhooks.services import crisp_connection_set

SHIPPING = "We ship to Canada in 3 to 5 business days for 12 dollars."


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def papercups(settings: Any) -> Iterator[FakePapercups]:
    """The Papercups simulator on 127.0.0.1, allow-listed for Netia's outbound calls (netia.outbound)."""
    with FakePapercups() as fake:
        settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [fake.url.removeprefix("http://")]
        yield fake


@pytest.fixture
def crisp(settings: Any) -> Iterator[FakeCrisp]:
    """The Crisp simulator, with Netia's plugin settings pointing at it (hooks kept unsent: no hook URL)."""
    with FakeCrisp() as fake:
        settings.CRISP_PLUGIN_IDENTIFIER = fake.identifier
        settings.CRISP_PLUGIN_KEY = fake.key
        settings.CRISP_SIGNING_SECRET = fake.signing_secret
        settings.CRISP_API_URL = fake.api_url
        settings.CRISP_TIMEOUT_SECONDS = 2.0
        yield fake


@pytest.fixture
def website(crisp: FakeCrisp) -> Website:
    """A Crisp website with one operator, the plugin installed."""
    site = crisp.add_website("Acme")
    crisp.add_operator(site, "Ana Operator")
    return site


@pytest.fixture
def connected(tenant: Tenant, crisp: FakeCrisp, website: Website) -> Tenant:
    """Tenant A connected to that website (Papercups modules define their own `connected`)."""
    crisp_connection_set(tenant=tenant, website_id=website.website_id, actor=SYSTEM)
    crisp.requests.clear()
    return tenant


def stored(tenant: Tenant) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str, bool]]]:
    """(conversations as (external id, status, assignee), messages as (external id, role, content, private))."""
    with tenant_context(tenant):
        conversations = list(
            Conversation.objects.order_by("id").values_list("external_id", "status", "assignee_external_id")
        )
        messages = list(Message.objects.order_by("id").values_list("external_id", "role", "content", "private"))
    return conversations, messages


@pytest.fixture
def account(papercups: FakePapercups, tenant: Tenant) -> Account:
    """The simulated Papercups account of the session's tenant A."""
    return papercups.add_account(str(tenant.papercups_account_id), bot_email="bot@acme.test")


def papercups_connect(tenant: Tenant, account: Account, papercups: FakePapercups) -> Tenant:
    """Connect tenant A to its simulated account (no webhook registered: tests post the events themselves);
    Papercups modules' `connected` fixture."""
    tenant.papercups_api_key = account.api_key
    tenant.papercups_base_url = papercups.url
    tenant.papercups_bot_user_id = account.bot.id
    tenant.save()
    return tenant
