"""Stored webhook events whose processing task was lost are queued again by the sweep; old ones are deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.models import Tenant
from tests.fakes.papercups_server import Account, FakePapercups
from tests.webhooks.test_papercups_webhook import post, stored, visitor_event
from webhooks.models import InboundEvent
from webhooks.services import inbound_events_sweep


@pytest.fixture
def account(papercups: FakePapercups, tenant: Tenant) -> Account:
    """The simulated Papercups account of the session's tenant A."""
    return papercups.add_account(str(tenant.papercups_account_id), bot_email="bot@acme.test")


@pytest.fixture
def connected(tenant: Tenant, account: Account, papercups: FakePapercups) -> Tenant:
    tenant.papercups_api_key = account.api_key
    tenant.papercups_base_url = papercups.url
    tenant.papercups_bot_user_id = account.bot.id
    tenant.save()
    return tenant


def test_the_sweep_processes_events_left_pending_and_deletes_old_processed_ones(
    client, connected, papercups, account, settings
):
    event = visitor_event(papercups, account)
    assert post(client, event, token=connected.webhook_secret, process=False).json() == {"status": "accepted"}
    stale = timezone.now() - timedelta(seconds=settings.PAPERCUPS_SWEEP_GRACE_SECONDS + 1)
    InboundEvent.objects.update(received_at=stale)  # its task was lost (broker down, worker killed)
    old = InboundEvent.objects.create(
        tenant=connected,
        channel="papercups",
        key="message:old",
        event="message:created",
        payload={},
        received_at=stale,
        processed_at=timezone.now() - timedelta(days=settings.INBOUND_EVENT_RETENTION_DAYS + 1),
        outcome="accepted",
    )

    swept = inbound_events_sweep()

    assert swept == {"requeued": 1, "deleted": 1}
    assert not InboundEvent.objects.filter(pk=old.pk).exists()
    assert InboundEvent.objects.get().outcome == "accepted"  # processed by the (eager) task it queued
    assert [m[1:3] for m in stored(connected)[1]] == [("visitor", event["payload"]["body"])]
