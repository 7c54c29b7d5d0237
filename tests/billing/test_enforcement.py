"""Enforcement: who may get bot answers (stable reason codes), 402 on the chat API, and on the Papercups
channel a single handoff with a note followed by silence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.models import BillingAccount, BillingNotification, UsagePeriod
from billing.selectors import BotAccess, bot_access_get, usage_summary_get
from billing.services import current_period, trial_extend
from chat.models import Conversation, Message
from chat.replies import conversation_reply
from chat.services import (
    conversation_get_or_create,
    knowledge_article_create,
    message_record_visitor,
)
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tenants.services import tenant_suspend
from tests.billing.factories import PlanFactory

NOW = timezone.now()


def _set(tenant: Tenant, *, status: str = "trialing", **account: object) -> Tenant:
    Tenant.objects.filter(pk=tenant.pk).update(subscription_status=status)
    BillingAccount.objects.filter(tenant=tenant).update(**account)
    return Tenant.objects.get(pk=tenant.pk)


def _use(tenant: Tenant, replies: int) -> None:
    start, end = current_period(tenant=tenant)
    UsagePeriod.objects.update_or_create(
        tenant=tenant, period_start=start, defaults={"period_end": end, "ai_replies": replies}
    )


@pytest.mark.parametrize(
    ("status", "account", "expected"),
    [
        ("trialing", {"trial_ends_at": NOW + timedelta(hours=1)}, BotAccess(allowed=True)),
        ("trialing", {"trial_ends_at": NOW - timedelta(seconds=1)}, BotAccess(False, "trial_ended")),
        (
            "trialing",
            {"trial_ends_at": NOW - timedelta(days=3), "stripe_subscription_id": "sub_1", "stripe_status": "trialing"},
            BotAccess(allowed=True),
        ),
        ("active", {"trial_ends_at": NOW - timedelta(days=30)}, BotAccess(allowed=True)),
        ("past_due", {"past_due_since": NOW - timedelta(days=6, hours=23)}, BotAccess(allowed=True)),
        ("past_due", {"past_due_since": NOW - timedelta(days=7, hours=1)}, BotAccess(False, "payment_overdue")),
        ("unpaid", {}, BotAccess(False, "subscription_inactive")),
        ("canceled", {}, BotAccess(False, "subscription_inactive")),
    ],
)
def test_access_by_status(tenant, settings, status, account, expected):
    settings.BILLING_PAST_DUE_GRACE_DAYS = 7

    assert bot_access_get(tenant=_set(tenant, status=status, **account), now=NOW) == expected


def test_suspension_wins_over_everything(tenant):
    tenant_suspend(tenant=tenant, actor=SYSTEM)

    assert bot_access_get(tenant=_set(tenant, status="active")) == BotAccess(False, "tenant_suspended")


def test_the_plan_limit_applies_per_period(tenant):
    _use(tenant, 199)
    below = bot_access_get(tenant=tenant)
    _use(tenant, 200)
    at_limit = bot_access_get(tenant=tenant)
    start, _ = current_period(tenant=tenant)
    UsagePeriod.objects.filter(tenant=tenant).update(period_start=start - timedelta(days=40))  # a past period

    assert (below, at_limit) == (BotAccess(allowed=True), BotAccess(False, "plan_limit_reached"))
    assert bot_access_get(tenant=tenant) == BotAccess(allowed=True)


def test_an_unlimited_plan_has_no_usage_limit(tenant):
    unlimited = PlanFactory.create(code="unlimited", ai_replies_per_month=None)
    _set(tenant, status="active", plan=unlimited)
    _use(tenant, 1_000_000)

    assert bot_access_get(tenant=tenant) == BotAccess(allowed=True)
    assert usage_summary_get(tenant=tenant).ai_replies_limit is None


# --- the chat API -----------------------------------------------------------------------------------------------
def _chat(client, tenant: Tenant, message: str = "Do you ship to Canada?", session: str = "s1"):
    return client.post(
        "/api/v1/chat",
        {"session_id": session, "message": message},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
    )


@pytest.fixture
def acme(tenant):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content="We ship to Canada in 3 to 5 business days.")
    return tenant


@pytest.mark.parametrize(
    ("status", "account", "used", "reason"),
    [
        ("trialing", {"trial_ends_at": NOW - timedelta(minutes=1)}, 0, "trial_ended"),
        ("past_due", {"past_due_since": NOW - timedelta(days=30)}, 0, "payment_overdue"),
        ("active", {}, 200, "plan_limit_reached"),
    ],
)
def test_chat_api_is_402_with_the_reason_and_stores_nothing(client, acme, status, account, used, reason):
    _set(acme, status=status, **account)
    _use(acme, used)

    response = _chat(client, acme)

    assert response.status_code == 402
    assert response.json()["error"] == {
        "code": "payment_required",
        "message": "The subscription is not active.",
        "details": {"reason": reason},
    }
    with tenant_context(acme):
        assert (Conversation.objects.count(), Message.objects.count()) == (0, 0)
    assert usage_summary_get(tenant=acme).ai_replies == used


def test_ai_replies_are_counted_up_to_the_limit_then_402(client, acme):
    _use(acme, 198)

    # Two different questions: an answer served from the cache would not count (tests/chat/test_public_token.py).
    questions = ["Do you ship to Canada?", "How many business days does shipping to Canada take?"]
    answered = [_chat(client, acme, message=q, session=f"s{i}").status_code for i, q in enumerate(questions)]
    greeting = _chat(client, acme, message="Hello!", session="g").status_code
    refused = _chat(client, acme, session="late")

    assert (answered, greeting) == ([200, 200], 402)
    assert refused.json()["error"]["details"] == {"reason": "plan_limit_reached"}
    assert usage_summary_get(tenant=acme).ai_replies == 200


def test_first_turns_count_in_their_own_statement_and_email_the_owner_once_after_it(
    client, acme, mailoutbox, django_capture_on_commit_callbacks
):
    plan = PlanFactory.create(code="small", ai_replies_per_month=5)
    BillingAccount.objects.filter(tenant=acme).update(plan=plan)
    _use(acme, 2)
    questions = [
        "Do you ship to Canada?",
        "How many business days does shipping to Canada take?",
        "Can you ship my order to Canada?",
        "Is shipping to Canada tracked?",
    ]

    with django_capture_on_commit_callbacks(execute=True):
        statuses = [_chat(client, acme, message=q, session=f"s{i}").status_code for i, q in enumerate(questions)]

    start, end = current_period(tenant=acme)
    assert statuses == [200, 200, 200, 402]
    assert usage_summary_get(tenant=acme).ai_replies == 5
    assert [m.subject for m in mailoutbox] == [
        "You have used 80% of your Netia AI replies",
        "You have used all your Netia AI replies",
    ]
    assert sorted(BillingNotification.objects.filter(tenant=acme).values_list("kind", "key", "context")) == [
        (kind, f"{start.isoformat()}/5", {**context, "plan": "Small", "limit": 5, "period_end": end.isoformat()})
        for kind, context in [
            ("usage_limit", {"used": 5, "percent": 100}),
            ("usage_warning", {"used": 4, "percent": 80}),
        ]
    ]


def test_greetings_and_handoffs_are_not_metered(client, acme):
    _chat(client, acme, message="Hello!", session="a")
    _chat(client, acme, message="Can I talk to a human please?", session="b")
    _chat(client, acme, session="c")

    assert usage_summary_get(tenant=acme).ai_replies == 1


# --- the Papercups channel: conversation_reply(deliver=True) -------------------------------------------------
def _papercups_turn(tenant: Tenant, text: str, message_id: str):
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel=Conversation.Channel.PAPERCUPS, external_id="pc-conv-1")
        message_record_visitor(conversation=conversation, content=text, external_id=message_id)
        return conversation.pk, conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)


@pytest.mark.parametrize(
    ("status", "account", "used", "reason"),
    [
        ("trialing", {"trial_ends_at": NOW - timedelta(minutes=1)}, 0, "trial_ended"),
        ("canceled", {}, 0, "subscription_inactive"),
        ("active", {}, 200, "plan_limit_reached"),
    ],
)
def test_papercups_hands_off_once_with_a_note_then_stays_silent(acme, status, account, used, reason):
    acme = _set(acme, status=status, **account)
    _use(acme, used)

    conversation_id, first = _papercups_turn(acme, "Do you ship to Canada?", "m1")
    _, second = _papercups_turn(acme, "Hello? Anyone?", "m2")

    assert first is not None
    assert (first.reply, first.handoff, first.handoff_reason, first.source) == (None, True, reason, "paused")
    assert second is None
    with tenant_context(acme):
        conversation = Conversation.objects.get(pk=conversation_id)
        assert (conversation.status, conversation.handoff_reason) == ("human", reason)
        assert [(m.role, m.kind, m.private, m.delivery_status) for m in conversation.messages.order_by("id")] == [
            ("visitor", "reply", False, ""),
            ("system", "note", True, "pending"),
            ("visitor", "reply", False, ""),
        ]
        note = conversation.messages.get(role="system")
        assert note.content == (
            f"Netia handed this conversation to your team (reason: {reason.replace('_', ' ')}).\n"
            "Last visitor message: Do you ship to Canada?"
        )
    assert usage_summary_get(tenant=acme).ai_replies == used


def test_papercups_answers_and_meters_when_allowed(acme):
    _, result = _papercups_turn(acme, "Do you ship to Canada?", "m1")

    assert result is not None
    assert (result.reply.content, result.reply.delivery_status) == (
        "We ship to Canada in 3 to 5 business days.",
        "pending",
    )
    assert usage_summary_get(tenant=acme).ai_replies == 1


def test_trial_end_is_read_at_answer_time(acme):
    trial_extend(tenant=acme, until=timezone.now() + timedelta(hours=1), actor=SYSTEM)
    _, before = _papercups_turn(acme, "Do you ship to Canada?", "m1")
    trial_extend(tenant=acme, until=timezone.now() - timedelta(seconds=1), actor=SYSTEM)

    _, after = _papercups_turn(acme, "And to Mexico?", "m2")

    assert (before.handoff, after.handoff, after.handoff_reason) == (False, True, "trial_ended")
