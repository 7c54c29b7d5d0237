"""Platform totals: tenants by status, per-day conversations, AI replies, handoffs and LLM tokens across every
tenant schema, failed deliveries and failing connections. Compared before/after adding known data, so rows
other tests committed do not matter."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from tenants.models import Tenant
from webhooks.models import ConnectionCheck, CrispConnection, FailedDelivery


def _conversation(session: str, *, days_ago: int, handed_off: bool = False) -> Conversation:
    when = timezone.now() - timedelta(days=days_ago)
    conversation = Conversation.objects.create(channel="api", session_id=session)
    Conversation.objects.filter(pk=conversation.pk).update(
        created_at=when, handed_off_at=when if handed_off else None, status="human" if handed_off else "bot"
    )
    return conversation


def _bot(conversation: Conversation, *, days_ago: int, **fields) -> None:
    message = Message.objects.create(conversation=conversation, role="bot", channel="api", content="…", **fields)
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=days_ago))


def _day(body: dict, days_ago: int) -> dict:
    day = (timezone.now() - timedelta(days=days_ago)).date().isoformat()
    return next(d for d in body["days"] if d["day"] == day)


def _delta(after: dict, before: dict, keys: list[str]) -> dict:
    return {key: after[key] - before[key] for key in keys}


DAY_KEYS = ["conversations", "ai_replies", "handoffs", "prompt_tokens", "completion_tokens"]


@pytest.mark.django_db
def test_stats_add_up_every_tenant_schema_per_day(api, tenant, other_tenant):
    before = api.get("stats").json()
    with tenant_context(tenant):
        today = _conversation("a1", days_ago=0)
        _conversation("a2", days_ago=0, handed_off=True)
        _bot(today, days_ago=0, llm_model="gpt-4o-mini", prompt_tokens=100, completion_tokens=20)
        _bot(today, days_ago=0, from_cache=True, llm_model="gpt-4o-mini")  # a cache hit: not metered
        _bot(today, days_ago=0, sources=[{"id": 1, "title": "Shipping"}])  # an offline quote
        _bot(today, days_ago=0, is_fallback=True, llm_model="gpt-4o-mini")  # not an AI reply
        _bot(today, days_ago=0)  # a greeting or away message: not an AI reply
        _bot(today, days_ago=0, kind="handoff_notice")
    with tenant_context(other_tenant):
        older = _conversation("b1", days_ago=3)
        _bot(older, days_ago=3, llm_model="gpt-4o", prompt_tokens=50, completion_tokens=10)
        _conversation("b2", days_ago=20)  # outside the 14-day window
    Tenant.objects.filter(pk=tenant.pk).update(subscription_status="active", suspended_at=timezone.now())
    FailedDelivery.objects.create(
        tenant=other_tenant, channel="papercups", kind="message", conversation_id=1, conversation_external_id="x",
        error="boom",
    )  # fmt: skip
    ConnectionCheck.objects.update_or_create(tenant=other_tenant, defaults={"ok": False, "problem": "bad_key"})
    CrispConnection.objects.create(
        tenant=tenant, website_id=str(uuid.uuid4()), check_ok=False, check_problem="not_installed",
        checked_at=timezone.now(),
    )  # fmt: skip

    response = api.get("stats")

    assert response.status_code == 200
    after = response.json()
    assert len(after["days"]) == 14
    assert _delta(_day(after, 0), _day(before, 0), DAY_KEYS) == {
        "conversations": 2,
        "ai_replies": 2,
        "handoffs": 1,
        "prompt_tokens": 100,
        "completion_tokens": 20,
    }
    assert _delta(_day(after, 3), _day(before, 3), DAY_KEYS) == {
        "conversations": 1,
        "ai_replies": 1,
        "handoffs": 0,
        "prompt_tokens": 50,
        "completion_tokens": 10,
    }
    assert _delta(after, before, [*DAY_KEYS]) == {
        "conversations": 3,
        "ai_replies": 3,
        "handoffs": 1,
        "prompt_tokens": 150,
        "completion_tokens": 30,
    }
    assert after["handoff_rate"] == round(after["handoffs"] / after["conversations"], 4)
    by_status = _delta(after["tenants"]["by_status"], before["tenants"]["by_status"], ["active", "trialing"])
    assert by_status == {"active": 1, "trialing": -1}
    assert after["tenants"]["suspended"] - before["tenants"]["suspended"] == 1
    assert _delta(after["failed_deliveries"], before["failed_deliveries"], ["open", "since"]) == {"open": 1, "since": 1}
    failing = [c for c in after["failing_connections"] if c["tenant_id"] in (tenant.pk, other_tenant.pk)]
    assert [(c["channel"], c["name"], c["problem"]) for c in failing] == [
        ("crisp", "Acme Test Shop", "not_installed"),  # the latest check first
        ("papercups", "Globex Test Clinic", "bad_key"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "91", "many"])
def test_stats_window_is_validated(api, days):
    response = api.get("stats", {"days": days})

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == ["days"]


@pytest.mark.django_db
def test_stats_window_length_follows_days(api):
    body = api.get("stats", {"days": 3}).json()

    assert [d["day"] for d in body["days"]] == [
        (timezone.now() - timedelta(days=n)).date().isoformat() for n in (2, 1, 0)
    ]
