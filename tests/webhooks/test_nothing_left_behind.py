"""Nothing left behind: a broker outage never fails a request whose work is stored, every piece of queued work
is a row the sweep finds again whatever its age, a turn no task manages to answer goes to the team (and to
staff), and no task is retried forever or runs unbounded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context
from kombu import Queue

from chat.models import Conversation, Lead, Message
from chat.services import conversation_get_or_create, knowledge_article_create, message_record_visitor
from chat.tasks import lead_notifications_sweep
from netia import dispatch
from netia.celery import app as celery_app
from netia.metrics import TASK_PUBLISH_FAILURES
from tenants.models import Tenant
from tests.fakes.papercups_server import Account, FakePapercups
from tests.webhooks.conftest import SHIPPING, papercups_connect
from webhooks.models import FailedDelivery
from webhooks.papercups import PapercupsAdapter
from webhooks.services import channel_reconcile, inbound_events_sweep


@pytest.fixture
def connected(tenant: Tenant, account: Account, papercups: FakePapercups) -> Tenant:
    """Tenant A connected to its simulated Papercups account."""
    return papercups_connect(tenant, account, papercups)


@pytest.fixture
def broker_down() -> Iterator[None]:
    """Tasks are published for real (not run in process) to a broker nobody listens on."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.task_always_eager)

    def use_broker() -> None:  # the connection and producer pools are built from broker_url on first use
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    conf.broker_url, conf.task_always_eager = "redis://127.0.0.1:9/0", False
    use_broker()
    try:
        yield
    finally:
        conf.broker_url, conf.task_always_eager = saved
        use_broker()


def test_a_broker_outage_never_fails_a_stored_reply_and_the_sweep_sends_the_email_later(
    client, tenant, broker_down, settings, smtp, django_capture_on_commit_callbacks
):
    failures_before = TASK_PUBLISH_FAILURES.labels(task="chat.tasks.lead_notify")._value.get()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            "/api/v1/chat",
            {"session_id": "s1", "message": "Please call me back, ana@example.com"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
        )

    assert (response.status_code, response.json()["lead_captured"]) == (200, True)
    published = [c for c in callbacks if c.__qualname__.startswith("enqueue_on_commit")]
    assert len(published) == 1  # the lead email's task: publishing it failed, quietly
    assert TASK_PUBLISH_FAILURES.labels(task="chat.tasks.lead_notify")._value.get() == failures_before + 1
    with tenant_context(tenant):
        lead = Lead.objects.get()
        assert (lead.email, lead.notified_at) == ("ana@example.com", None)
        Lead.objects.update(notify_due_at=timezone.now() - timedelta(hours=1))  # due past the sweep's grace
    # The broker is back (tasks run here again): the sweep finds the email nobody sent.
    celery_app.conf.task_always_eager = True
    assert lead_notifications_sweep() == 1
    (mail,) = smtp.messages
    assert mail.recipients == ["owner@acme.test"]


def test_a_webhook_stored_during_a_broker_outage_is_answered_once_the_sweep_finds_it(
    client, connected, papercups, account, broker_down, settings, django_capture_on_commit_callbacks
):
    conversation = papercups.start_conversation(account, "joe@example.com")
    payload = papercups.visitor_says(account, conversation["id"], "Do you ship to Canada?")
    with tenant_context(connected):
        knowledge_article_create(tenant=connected, title="Shipping", content=SHIPPING)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/papercups/webhook?token={connected.webhook_secret}",
            {"event": "message:created", "payload": payload},
            content_type="application/json",
        )
    with tenant_context(connected):
        assert Message.objects.count() == 0  # stored raw only: its processing was never queued
    # The broker is back (tasks run here again): the inbound-events sweep queues the event's processing.
    celery_app.conf.task_always_eager = True
    settings.PAPERCUPS_SWEEP_GRACE_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        swept = inbound_events_sweep()

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert swept == {"requeued": 1, "deleted": 0}
    with tenant_context(connected):
        question, reply = Message.objects.order_by("id")
        assert (reply.role, reply.content, reply.delivery_status) == ("bot", SHIPPING, "pending")
        assert question.answered_by_id == reply.pk
        again = channel_reconcile(tenant=connected)
    assert (again.recorded, again.replies_queued) == (0, 0)


def _old_turn(tenant: Any, *, age: timedelta) -> Conversation:
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="papercups", external_id="c-old")
        message_record_visitor(conversation=conversation, content="Do you ship to Canada?", external_id="m-old")
        Message.objects.update(created_at=timezone.now() - age)
        return conversation


def test_the_sweep_requeues_an_unanswered_turn_whatever_its_age(
    connected, settings, django_capture_on_commit_callbacks
):
    settings.PAPERCUPS_TURN_GIVE_UP_SECONDS = 7 * 86400
    conversation = _old_turn(connected, age=timedelta(days=2))  # far beyond the reconciliation's look-back window

    with tenant_context(connected):
        with django_capture_on_commit_callbacks(execute=True):
            swept = channel_reconcile(tenant=connected)
        bot = Message.objects.get(role="bot")

    assert (swept.replies_queued, swept.given_up) == (1, 0)
    assert (bot.conversation_id, bot.delivery_status) == (conversation.pk, "pending")
    with tenant_context(connected):
        assert Message.objects.get(role="visitor").answered_by_id == bot.pk


def test_a_turn_unanswered_past_the_give_up_window_goes_to_the_team_and_to_staff(
    connected, papercups, settings, django_capture_on_commit_callbacks
):
    settings.PAPERCUPS_TURN_GIVE_UP_SECONDS = 3600
    conversation = _old_turn(connected, age=timedelta(hours=2))

    with tenant_context(connected):
        with django_capture_on_commit_callbacks(execute=True):
            swept = channel_reconcile(tenant=connected)
        local = Conversation.objects.get(pk=conversation.pk)
        note = Message.objects.get(role="system")

    failure = FailedDelivery.objects.get(tenant=connected, kind="turn")
    assert (swept.replies_queued, swept.given_up) == (0, 1)
    assert (local.status, local.handoff_reason) == ("human", "bot_gave_up")
    assert (note.private, note.content.splitlines()[0]) == (
        True,
        "Netia handed this conversation to your team (reason: bot gave up).",
    )
    assert (failure.conversation_external_id, failure.content_preview) == ("c-old", "Do you ship to Canada?")
    assert failure.error == "No reply within 3600 s: handed to the team."
    with tenant_context(connected):  # a second sweep finds nothing left to do
        assert (channel_reconcile(tenant=connected).replies_queued, FailedDelivery.objects.count()) == (0, 1)


def test_every_task_has_time_limits_and_bounded_retries():
    apps = ("tenants", "billing", "chat", "webhooks", "dashboard")
    ours = {name: task for name, task in celery_app.tasks.items() if name.split(".")[0] in apps}
    conf = celery_app.conf

    assert len(ours) >= 14
    for name, task in ours.items():
        soft, hard = task.soft_time_limit or conf.task_soft_time_limit, task.time_limit or conf.task_time_limit
        assert soft is not None, name
        assert hard is not None, name
        assert soft < hard, name
        assert task.max_retries is not None, name


def test_every_worker_reads_fresh_replies_first_then_retries_then_the_rest():
    routed = {route["queue"] for route in celery_app.conf.task_routes.values()}

    assert [q.name for q in celery_app.conf.task_queues] == list(dispatch.QUEUES)
    assert all(isinstance(q, Queue) for q in celery_app.conf.task_queues)
    assert routed | {celery_app.conf.task_default_queue} <= set(dispatch.QUEUES)
    assert celery_app.conf.broker_transport_options["queue_order_strategy"] == "priority"


def test_reconciliation_reads_the_conversation_list_page_by_page_and_stops_at_the_look_back_window(
    connected, papercups, account
):
    now = timezone.now()
    moment = [now - timedelta(hours=2)]
    papercups.clock = lambda: moment[0]
    old = [papercups.start_conversation(account, f"old{n}@example.com") for n in range(60)]
    for conversation in old:
        papercups.visitor_says(account, conversation["id"], "an old question")
    moment[0] = now
    recent = [papercups.start_conversation(account, f"new{n}@example.com") for n in range(60)]
    for conversation in recent:
        papercups.visitor_says(account, conversation["id"], "a new question")

    messages = PapercupsAdapter(connected).recent_messages(since=now - timedelta(minutes=15))

    listings = [r for r in papercups.requests if r.path == "/api/v1/conversations"]
    assert [r.query.get("limit") for r in listings] == [["50"], ["50"]]  # the 60 recent ones, then older: stop
    assert "after" in listings[1].query
    assert sorted(m.conversation_external_id for m in messages) == sorted(c["id"] for c in recent)
    assert {m.content for m in messages} == {"a new question"}
    assert papercups.requests_to("GET", "/api/v1/messages") == []


def test_a_visitor_turn_written_while_a_human_had_the_chat_never_makes_the_sweep_give_up(
    connected, settings, django_capture_on_commit_callbacks
):
    # "Thanks" written while an agent had the chat (never answered by the bot), then, two hours later, a new
    # question that reopened the chat for the bot: only the new question is the bot's to answer.
    settings.PAPERCUPS_TURN_GIVE_UP_SECONDS = 3600
    settings.PAPERCUPS_SWEEP_GRACE_SECONDS = 0
    conversation = _old_turn(connected, age=timedelta(hours=2))
    with tenant_context(connected):
        question, _ = message_record_visitor(conversation=conversation, content="And to Mexico?", external_id="m-new")
        Conversation.objects.filter(pk=conversation.pk).update(
            status="bot", bot_since=question.created_at - timedelta(seconds=1)
        )

        with django_capture_on_commit_callbacks(execute=True):
            swept = channel_reconcile(tenant=connected)
        local = Conversation.objects.get(pk=conversation.pk)
        bot = Message.objects.get(role="bot")
        question.refresh_from_db()

    assert (swept.replies_queued, swept.given_up) == (1, 0)
    assert (local.status, FailedDelivery.objects.count()) == ("bot", 0)
    assert question.answered_by_id == bot.pk


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("webhooks.tasks.inbound_events_sweep", "retries"),
        ("webhooks.tasks.channel_reconcile_all", "retries"),
        ("webhooks.tasks.channel_reconcile_tenant", "retries"),
        ("chat.tasks.lead_notifications_sweep", "retries"),
        ("billing.tasks.billing_notifications_sweep", "retries"),
        ("webhooks.tasks.channel_reply", "replies"),
        ("chat.tasks.passages_embed_stale", "background"),
    ],
)
def test_the_recovery_sweeps_are_not_starved_behind_the_reply_traffic(task, queue):
    # Queues are read in priority order (replies, retries, background): a sweep on `background` would wait
    # behind every fresh turn and retry, and the work it recovers with it.
    routed = celery_app.amqp.router.route({}, task)

    assert routed["queue"].name == queue
