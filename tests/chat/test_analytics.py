"""The overview's figures (chat.analytics): one selector behind the portal page and the developers' API."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.services import usage_ai_reply_record
from chat.analytics import analytics_get
from chat.knowledge import bot_configuration_update
from chat.models import Conversation, Lead, Message
from chat.selectors import bot_configuration_get
from tenants.audit import SYSTEM
from tenants.services import api_key_create

NOW = timezone.now()


def _conversation(session: str, at, *, reply_after: float | None, intent: str = "", handoff: str = "") -> Conversation:
    conversation = Conversation.objects.create(channel="api", session_id=session)
    visitor = Message.objects.create(conversation=conversation, channel="api", role="visitor", content="Q")
    Message.objects.filter(pk=visitor.pk).update(created_at=at)
    if reply_after is not None:
        bot = Message.objects.create(conversation=conversation, channel="api", role="bot", content="A", intent=intent)
        Message.objects.filter(pk=bot.pk).update(created_at=at + timedelta(seconds=reply_after))
        # A private note earlier than the reply does not count as the bot's first reply.
        note = Message.objects.create(conversation=conversation, channel="api", role="bot", content="n", private=True)
        Message.objects.filter(pk=note.pk).update(created_at=at)
    fields = {"created_at": at}
    if handoff:
        fields.update(status="human", handoff_reason=handoff, handed_off_at=at + timedelta(minutes=1))
    Conversation.objects.filter(pk=conversation.pk).update(**fields)
    return conversation


@pytest.fixture
def week(tenant):
    """Three conversations this week (one answered alone, two handed off), one older; leads in and out."""
    with tenant_context(tenant):
        recent = _conversation("c1", NOW - timedelta(minutes=30), reply_after=4, intent="pricing")
        _conversation("c2", NOW - timedelta(days=1), reply_after=10, intent="booking", handoff="complaint")
        _conversation("c3", NOW - timedelta(days=2), reply_after=2, intent="pricing", handoff="visitor_asked_for_human")
        _conversation("old", NOW - timedelta(days=20), reply_after=100, intent="other", handoff="complaint")
        _conversation("silent", NOW - timedelta(minutes=40), reply_after=None)
        lead = Lead.objects.create(conversation=recent, email="ana@example.com")
        old_lead = Lead.objects.create(conversation=Conversation.objects.get(session_id="old"))
        Lead.objects.filter(pk=old_lead.pk).update(created_at=NOW - timedelta(days=20))
    for _ in range(3):
        usage_ai_reply_record(tenant=tenant)
    return lead


def test_figures_of_the_last_seven_days(tenant, week):
    with tenant_context(tenant):
        figures = analytics_get(tenant=tenant, days=7, now=timezone.now())
        days = Counter(c.created_at.date() for c in Conversation.objects.exclude(session_id="old"))

    assert figures.conversations == 4
    assert [(d.day, d.count) for d in figures.conversations_per_day if d.count] == sorted(days.items())
    assert len(figures.conversations_per_day) == 7
    assert figures.conversations_per_day[-1].day == NOW.date()
    assert figures.conversations_per_day[0].day == NOW.date() - timedelta(days=6)
    assert (figures.answered_by_bot, figures.answered_by_bot_share) == (2, 0.5)
    assert figures.handoffs_by_reason == [("complaint", 1), ("visitor_asked_for_human", 1)]
    assert figures.handoffs == 2
    assert figures.new_leads == 1
    assert figures.top_intents == [("pricing", 2), ("booking", 1)]
    assert figures.first_reply_median_seconds == 4.0
    assert (figures.ai_replies_used, figures.ai_replies_limit) == (3, 200)


def test_a_longer_period_takes_older_conversations_in(tenant, week):
    with tenant_context(tenant):
        figures = analytics_get(tenant=tenant, days=30, now=timezone.now())

    assert figures.conversations == 5
    assert figures.handoffs_by_reason == [("complaint", 2), ("visitor_asked_for_human", 1)]
    assert figures.first_reply_median_seconds == 7.0  # 2, 4, 10, 100
    assert figures.new_leads == 2


def test_days_are_the_bots_local_days(tenant):
    late = (NOW - timedelta(days=2)).replace(hour=3)  # 03:00 UTC is the evening before in New York
    with tenant_context(tenant):
        bot_configuration_update(tenant=tenant, timezone="America/New_York")
        _conversation("night", late, reply_after=1)
        figures = analytics_get(tenant=tenant, days=7, now=timezone.now())

    local_day = late.astimezone(ZoneInfo("America/New_York")).date()
    assert local_day == late.date() - timedelta(days=1)
    assert [(d.day, d.count) for d in figures.conversations_per_day if d.count] == [(local_day, 1)]
    assert figures.timezone == "America/New_York"


def test_nothing_to_measure_gives_none_not_zero(tenant):
    with tenant_context(tenant):
        figures = analytics_get(tenant=tenant, days=90, now=timezone.now())

    assert (figures.conversations, figures.answered_by_bot_share, figures.first_reply_median_seconds) == (0, None, None)
    assert sum(d.count for d in figures.conversations_per_day) == 0
    assert len(figures.conversations_per_day) == 90


def test_only_seven_thirty_or_ninety_days(tenant):
    with tenant_context(tenant), pytest.raises(Exception, match="7, 30 or 90"):
        analytics_get(tenant=tenant, days=14)


def test_the_figures_take_a_fixed_number_of_queries(tenant, week):
    with tenant_context(tenant):
        bot_configuration_get()
        with CaptureQueriesContext(connection) as queries:
            analytics_get(tenant=tenant, days=90, now=timezone.now())

    statements = [
        q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SET ", "SAVEPOINT", "RELEASE"))
    ]
    # configuration, totals, per day, handoffs, intents, median, leads; billing account, usage, default plan
    assert len(statements) == 10


def test_the_api_serves_the_same_figures(client, tenant, week):
    _, key = api_key_create(tenant=tenant, name="stats", permissions=["conversations:read"], actor=SYSTEM)

    response = client.get("/api/v1/customer/analytics?days=7", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 200
    body = response.json()
    assert (body["days"], body["conversations"], body["answered_by_bot_share"]) == (7, 4, 0.5)
    assert body["handoffs_by_reason"] == [
        {"key": "complaint", "count": 1},
        {"key": "visitor_asked_for_human", "count": 1},
    ]
    assert body["top_intents"] == [{"key": "pricing", "count": 2}, {"key": "booking", "count": 1}]
    assert sum(day["count"] for day in body["conversations_per_day"]) == 4
    assert (body["ai_replies_used"], body["ai_replies_limit"], body["new_leads"]) == (3, 200, 1)


@pytest.mark.parametrize(
    ("query", "permissions", "status", "code"),
    [
        ("?days=14", ["conversations:read"], 400, "invalid"),
        ("?days=abc", ["conversations:read"], 400, "invalid"),
        ("", ["leads:read"], 403, "forbidden"),
    ],
)
def test_the_api_refuses_bad_periods_and_keys_without_the_permission(client, tenant, query, permissions, status, code):
    _, key = api_key_create(tenant=tenant, name="k", permissions=permissions, actor=SYSTEM)

    response = client.get(f"/api/v1/customer/analytics{query}", headers={"Authorization": f"Bearer {key}"})

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
