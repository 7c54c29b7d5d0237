"""End to end through the Papercups simulator: real webhooks into a live Netia, a real Celery worker, real
replies back over HTTP. Exactly one reply per visitor turn, whatever Papercups, the LLM or the worker does.

Over ~400 lines on purpose: each failure scenario (Papercups down, LLM down, worker killed, missed
webhooks) shares the live server, worker and simulator fixtures of this module.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import requests
from django.urls import reverse
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from chat.services import message_record_visitor
from netia.metrics import DELIVERIES
from tenants.audit import SYSTEM
from tenants.models import User
from tenants.services import tenant_suspend
from tests.webhooks.conftest import SHIPPING, wait_until
from tests.webhooks.live.conftest import QUIET, Live, TaskTracker
from webhooks.models import FailedDelivery
from webhooks.tasks import channel_deliver, channel_reconcile_all

HANDOFF_NOTICE = "I'm passing you to a member of our team. They will reply here shortly."
# Retry windows are wall-clock time. Rather than racing a tiny window on a loaded machine, a test keeps the
# window open until it has seen the retries it is about, then closes it: the next attempt is past the window.
WINDOW_OPEN = 60.0
WINDOW_CLOSED = 0.0


def _local(live: Live, conversation_id: str) -> tuple[Conversation, list[Message]]:
    with tenant_context(live.tenant):
        conversation = Conversation.objects.get(external_id=conversation_id)
        return conversation, list(conversation.messages.order_by("id"))


def _ask(live: Live, text: str = "Do you ship to Canada?") -> tuple[str, dict[str, Any]]:
    conversation = live.papercups.start_conversation(live.account, "joe@example.com", customer_name="Joe")
    return conversation["id"], live.papercups.visitor_says(live.account, conversation["id"], text)


def _runs(live: Live, task: str) -> list[tuple[str, Any]]:
    """(state, return value) of each run of a task in this test (the in-thread worker counts them)."""
    assert isinstance(live.worker, TaskTracker)
    return live.worker.runs(task)


def _answered(live: Live, conversation_id: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait for `count` bot messages in the conversation and for the worker to be idle; return them."""
    wait_until(lambda: len(live.bot_messages(conversation_id)) >= count)
    live.worker.wait_idle()
    return live.bot_messages(conversation_id)


def test_a_visitors_question_gets_exactly_one_grounded_reply(live: Live) -> None:
    conversation = live.papercups.start_conversation(live.account, "joe@example.com", customer_name="Joe")
    started = time.monotonic()
    visitor = live.papercups.visitor_says(live.account, conversation["id"], "Do you ship to Canada?")
    acknowledged = time.monotonic() - started

    (reply,) = _answered(live, conversation["id"])

    local, (question, bot) = _local(live, conversation["id"])
    assert (local.channel, local.status, local.visitor_name, local.visitor_email) == (
        "papercups",
        "bot",
        "Joe",
        "joe@example.com",
    )
    assert (question.role, question.external_id, question.content, question.answered_by_id) == (
        "visitor",
        visitor["id"],
        "Do you ship to Canada?",
        bot.pk,
    )
    assert (bot.role, bot.content, bot.delivery_status, bot.delivery_attempts, bot.external_id) == (
        "bot",
        SHIPPING,
        "sent",
        1,
        reply["id"],
    )
    assert local.assignee_external_id == str(live.account.bot.id)  # conversation:updated kept in step
    assert (reply["body"], reply["type"], reply["source"], reply["private"]) == (SHIPPING, "bot", "api", False)
    assert reply["metadata"] == {"disable_webhook_events": True, "netia_message_id": str(bot.public_id)}
    (post,) = live.message_posts()
    assert post.headers["authorization"] == f"Bearer {live.account.api_key}"
    assert [(d.event, d.status) for d in live.papercups.webhooks()] == [
        ("webhook:verify", 200),
        ("conversation:created", 200),
        ("message:created", 200),
        ("conversation:updated", 200),  # the bot's first reply assigned the conversation to the bot
    ]
    assert acknowledged < QUIET  # the webhook was answered before any reply work started


def test_duplicate_webhooks_store_once_and_get_one_reply(live: Live) -> None:
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    live.papercups.drop_next_webhook(event="message:created")
    visitor = live.papercups.visitor_says(live.account, conversation["id"], "Do you ship to Canada?")
    body = {"event": "message:created", "payload": visitor}
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(live.post_webhook(body))) for _ in range(5)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (reply,) = _answered(live, conversation["id"])
    late = live.post_webhook(body)
    live.worker.wait_idle()

    statuses = sorted(answer.json()["status"] for answer in answers)
    assert [answer.status_code for answer in answers] == [200] * 5
    assert statuses == ["accepted", "duplicate", "duplicate", "duplicate", "duplicate"]
    assert (late.status_code, late.json()) == (200, {"status": "duplicate"})
    assert reply["body"] == SHIPPING
    assert len(live.message_posts()) == 1
    _, messages = _local(live, conversation["id"])
    assert [(m.role, m.external_id) for m in messages] == [("visitor", visitor["id"]), ("bot", reply["id"])]
    assert _runs(live, "channel_reply") == [("SUCCESS", "answered")]


def test_a_burst_gets_one_reply_after_the_quiet_period_and_the_next_turn_its_own(live: Live) -> None:
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    for text in ("Hi", "quick question", "do you ship to Canada?"):
        live.papercups.visitor_says(live.account, conversation["id"], text)
    (first,) = _answered(live, conversation["id"])

    live.papercups.visitor_says(live.account, conversation["id"], "When are you open?")
    first_again, second = _answered(live, conversation["id"], count=2)

    _, messages = _local(live, conversation["id"])
    burst_reply, turn_reply = (m for m in messages if m.role == "bot")
    assert [(m.role, m.content, m.answered_by_id) for m in messages] == [
        ("visitor", "Hi", burst_reply.pk),
        ("visitor", "quick question", burst_reply.pk),
        ("visitor", "do you ship to Canada?", burst_reply.pk),
        ("bot", SHIPPING, None),
        ("visitor", "When are you open?", turn_reply.pk),
        ("bot", "We are open Monday to Friday from 9:00 to 18:00.", None),
    ]
    assert (first["body"], first_again["id"], second["body"]) == (SHIPPING, first["id"], turn_reply.content)
    assert [retval for _, retval in _runs(live, "channel_reply")] == [
        "superseded",
        "superseded",
        "answered",
        "answered",
    ]


def test_an_agent_taking_over_silences_the_bot(live: Live) -> None:
    conversation_id, _ = _ask(live)
    _answered(live, conversation_id)

    live.papercups.private_note(live.account, conversation_id, "VIP, be nice", user_id=live.agent.id)
    live.worker.wait_idle()
    assert _local(live, conversation_id)[0].status == "bot"  # a private note is no takeover
    live.papercups.agent_says(live.account, conversation_id, "Hi Joe, Ana here. Let me check that for you.")
    live.papercups.visitor_says(live.account, conversation_id, "Thanks Ana! Also, when are you open?")
    live.worker.wait_idle()
    time.sleep(QUIET + 0.1)

    local, messages = _local(live, conversation_id)
    assert (local.status, local.handoff_reason) == ("human", "agent_replied")
    assert [(m.role, m.kind, m.private) for m in messages] == [
        ("visitor", "reply", False),
        ("bot", "reply", False),
        ("agent", "note", True),
        ("agent", "reply", False),
        ("visitor", "reply", False),
    ]
    assert len(live.bot_messages(conversation_id)) == 1
    assert len(_runs(live, "channel_reply")) == 1


def test_papercups_failing_with_500_then_201_still_gives_one_reply(live: Live) -> None:
    live.papercups.fail_next("POST", "/api/v1/messages", 500)
    conversation_id, _ = _ask(live)

    (reply,) = _answered(live, conversation_id)

    _, (_, bot) = _local(live, conversation_id)
    assert (bot.delivery_status, bot.delivery_attempts, bot.external_id, bot.delivery_error) == (
        "sent",
        2,
        reply["id"],
        "",
    )
    assert [r.path for r in live.message_posts()] == ["/api/v1/messages", "/api/v1/messages"]
    # Read before each attempt: who has the conversation, and is the failed attempt there after all?
    assert len(live.papercups.requests_to("GET", f"/api/v1/conversations/{conversation_id}")) >= 2
    assert [state for state, _ in _runs(live, "channel_deliver")] == ["RETRY", "SUCCESS"]


def test_a_reply_posted_whose_answer_was_lost_is_not_sent_again(live: Live, settings: Any) -> None:
    settings.PAPERCUPS_TIMEOUT_SECONDS = 0.3
    live.papercups.slow_next("POST", "/api/v1/messages", 1.0)  # Papercups stores it, answers too late
    conversation_id, _ = _ask(live)

    (reply,) = _answered(live, conversation_id)
    time.sleep(0.8)  # let the late answer go out: still nothing more

    _, (_, bot) = _local(live, conversation_id)
    assert (bot.delivery_status, bot.delivery_attempts, bot.external_id) == ("sent", 1, reply["id"])
    assert len(live.message_posts()) == 1
    assert len(live.bot_messages(conversation_id)) == 1


def _left_sending(live: Live, *, posted: bool) -> tuple[str, Message, dict[str, Any] | None]:
    """The state a worker killed mid-send leaves: the attempt recorded (`sending`), maybe posted, never confirmed."""
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    live.worker.wait_idle()  # the worker has processed the stored conversation:created
    with tenant_context(live.tenant):
        local = Conversation.objects.get(external_id=conversation["id"])  # from conversation:created
        bot = Message.objects.create(
            conversation=local,
            channel="papercups",
            role="bot",
            content=SHIPPING,
            delivery_status="sending",
            delivery_attempts=1,
        )
    posted_message = None
    if posted:
        response = requests.post(
            f"{live.papercups.url}/api/v1/messages",
            json={
                "message": {
                    "conversation_id": conversation["id"],
                    "body": SHIPPING,
                    "type": "bot",
                    "source": "api",
                    "metadata": {"disable_webhook_events": True, "netia_message_id": str(bot.public_id)},
                }
            },
            headers={"Authorization": f"Bearer {live.account.api_key}"},
            timeout=5,
        )
        posted_message = response.json()["data"]
    return conversation["id"], bot, posted_message


def test_after_a_worker_died_mid_send_the_retry_finds_the_message_and_does_not_resend(live: Live) -> None:
    conversation_id, bot, posted = _left_sending(live, posted=True)
    assert posted is not None

    channel_deliver.delay(tenant_id=live.tenant.pk, conversation_id=bot.conversation_id)
    live.worker.wait_idle()

    with tenant_context(live.tenant):
        bot.refresh_from_db()
    assert (bot.delivery_status, bot.delivery_attempts, bot.external_id) == ("sent", 1, posted["id"])
    assert len(live.message_posts()) == 1  # only the dead worker's
    assert [m["id"] for m in live.bot_messages(conversation_id)] == [posted["id"]]


def test_after_a_worker_died_before_the_request_left_the_retry_sends_once(live: Live) -> None:
    conversation_id, bot, _ = _left_sending(live, posted=False)

    channel_deliver.delay(tenant_id=live.tenant.pk, conversation_id=bot.conversation_id)
    live.worker.wait_idle()

    with tenant_context(live.tenant):
        bot.refresh_from_db()
    (reply,) = live.bot_messages(conversation_id)
    assert (bot.delivery_status, bot.delivery_attempts, bot.external_id) == ("sent", 2, reply["id"])
    calls = [(r.method, r.path) for r in live.papercups.requests if r.path.startswith("/api/v1/")]
    read = ("GET", f"/api/v1/conversations/{conversation_id}")
    assert calls.index(read) < calls.index(("POST", "/api/v1/messages"))  # looked before sending
    assert len(live.message_posts()) == 1


def test_handoff_posts_the_notice_unassigns_the_bot_raises_priority_and_leaves_a_note(live: Live) -> None:
    conversation_id, _ = _ask(live, "Can I talk to a human please?")

    notice, note = _answered(live, conversation_id, count=2)
    live.papercups.visitor_says(live.account, conversation_id, "Hello? Anyone?")
    live.worker.wait_idle()
    time.sleep(QUIET + 0.1)

    assert (notice["body"], notice["type"], notice["private"]) == (HANDOFF_NOTICE, "bot", False)
    assert (note["type"], note["private"]) == ("note", True)
    assert note["body"] == (
        "Netia handed this conversation to your team (reason: visitor asked for human).\n"
        "Last visitor message: Can I talk to a human please?"
    )
    in_papercups = live.papercups.conversation(conversation_id)
    # Unassigned, raised, and unread again: the private note had marked it read, hiding it from the agents.
    assert (in_papercups["assignee_id"], in_papercups["priority"], in_papercups["read"]) == (None, "priority", False)
    calls = [(r.method, r.path) for r in live.papercups.requests if r.method in ("POST", "PUT")]
    assert calls == [
        ("POST", "/api/v1/messages"),
        ("POST", "/api/v1/messages"),
        ("PUT", f"/api/v1/conversations/{conversation_id}"),
    ]
    (put,) = live.papercups.requests_to("PUT", "/api/v1/conversations/")
    assert put.json() == {"conversation": {"assignee_id": None, "priority": "priority", "read": False}}
    local, messages = _local(live, conversation_id)
    assert (local.status, local.handoff_reason, local.handoff_sync_pending, local.assignee_external_id) == (
        "human",
        "visitor_asked_for_human",
        False,
        "",
    )
    assert [(m.role, m.kind, m.delivery_status) for m in messages] == [
        ("visitor", "reply", ""),
        ("bot", "handoff_notice", "sent"),
        ("system", "note", "sent"),
        ("visitor", "reply", ""),
    ]
    assert len(live.bot_messages(conversation_id)) == 2


def test_reconciliation_answers_a_dropped_webhook_once(live: Live) -> None:
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    live.papercups.drop_next_webhook(event="message:created")
    visitor = live.papercups.visitor_says(live.account, conversation["id"], "Do you ship to Canada?")
    time.sleep(QUIET + 0.1)
    assert live.bot_messages(conversation["id"]) == []

    channel_reconcile_all.delay()
    (reply,) = _answered(live, conversation["id"])
    channel_reconcile_all.delay()
    live.worker.wait_idle()

    assert reply["body"] == SHIPPING
    assert len(live.bot_messages(conversation["id"])) == 1
    _, messages = _local(live, conversation["id"])
    assert [(m.role, m.external_id) for m in messages] == [("visitor", visitor["id"]), ("bot", reply["id"])]
    reconciled = [retval for _, retval in _runs(live, "channel_reconcile_tenant")]
    assert reconciled == [
        {"recorded": 1, "replies_queued": 1, "deliveries_queued": 0, "given_up": 0},
        {"recorded": 0, "replies_queued": 0, "deliveries_queued": 0, "given_up": 0},
    ]
    # Read from the paginated conversation list, never from GET /api/v1/messages (the account's whole history).
    assert live.papercups.requests_to("GET", "/api/v1/messages") == []
    listings = [r for r in live.papercups.requests_to("GET", "/api/v1/conversations") if r.path.endswith("s")]
    assert {r.query["limit"][0] for r in listings} == {"50"}


def test_reconciliation_neither_re_answers_a_covered_message_nor_talks_over_an_agent(live: Live) -> None:
    covered = live.papercups.start_conversation(live.account, "joe@example.com")
    live.papercups.drop_next_webhook(event="message:created")
    missed = live.papercups.visitor_says(live.account, covered["id"], "Hello there")
    live.papercups.visitor_says(live.account, covered["id"], "Do you ship to Canada?")
    (reply,) = _answered(live, covered["id"])
    taken = live.papercups.start_conversation(live.account, "ann@example.com")
    live.papercups.drop_next_webhook(times=3)  # the visitor's message, the agent's, and its conversation:updated
    live.papercups.visitor_says(live.account, taken["id"], "Do you ship to Canada?")
    live.papercups.agent_says(live.account, taken["id"], "Ana here: yes, we do.")
    live.worker.wait_idle()  # the stored conversation:created processed
    assert _local(live, taken["id"])[0].status == "bot"  # nothing reached Netia

    channel_reconcile_all.delay()
    live.worker.wait_idle()
    time.sleep(QUIET + 0.1)

    _, messages = _local(live, covered["id"])
    bot = next(m for m in messages if m.role == "bot")
    assert sorted((m.content, m.answered_by_id) for m in messages if m.role == "visitor") == [
        ("Do you ship to Canada?", bot.pk),
        ("Hello there", bot.pk),
    ]
    assert missed["id"] in {m.external_id for m in messages}
    assert [m["id"] for m in live.bot_messages(covered["id"])] == [reply["id"]]
    local_taken, taken_messages = _local(live, taken["id"])
    assert (local_taken.status, [m.role for m in taken_messages]) == ("human", ["visitor", "agent"])
    assert live.bot_messages(taken["id"]) == []


def test_llm_down_then_up_retries_the_turn_and_answers_once(live: Live, fake_openai: Any) -> None:
    fake_openai.fail_with(500, times=2)
    conversation_id, _ = _ask(live)

    (reply,) = _answered(live, conversation_id)

    assert reply["body"] == 'According to [1], "Shipping: We ship to Canada in 3 to 5 business days for 12 dollars."'
    assert len(fake_openai.completion_requests()) == 3
    assert [state for state, _ in _runs(live, "channel_reply")] == ["RETRY", "RETRY", "SUCCESS"]
    _, (_, bot) = _local(live, conversation_id)
    assert (bot.is_fallback, bot.delivery_status) == (False, "sent")


def test_llm_down_past_the_retry_window_sends_the_fallback_once(live: Live, fake_openai: Any, settings: Any) -> None:
    settings.PAPERCUPS_REPLY_RETRY_SECONDS = WINDOW_OPEN
    fake_openai.fail_with(503, times=1000)
    conversation_id, _ = _ask(live)
    wait_until(lambda: [state for state, _ in _runs(live, "channel_reply")].count("RETRY") >= 2)

    settings.PAPERCUPS_REPLY_RETRY_SECONDS = WINDOW_CLOSED
    (reply,) = _answered(live, conversation_id)

    assert reply["body"].startswith("Sorry, I can't answer right now.")
    _, (question, bot) = _local(live, conversation_id)
    assert (bot.is_fallback, question.answered_by_id) == (True, bot.pk)
    states = [state for state, _ in _runs(live, "channel_reply")]
    assert states[-1] == "SUCCESS"
    assert set(states[:-1]) == {"RETRY"}
    assert len(states) >= 3
    assert len(fake_openai.completion_requests()) == len(states)


def test_papercups_down_past_the_window_marks_failed_and_the_admin_retry_delivers_once(
    live: Live, settings: Any, client: Any
) -> None:
    settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS = WINDOW_OPEN
    failed_before = DELIVERIES.labels(channel="papercups", outcome="failed")._value.get()
    live.papercups.fail_next("POST", "/api/v1/messages", 503, times=1000)
    conversation_id, _ = _ask(live)
    wait_until(lambda: len(live.message_posts()) >= 2)  # refused, and retried
    settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS = WINDOW_CLOSED
    wait_until(lambda: FailedDelivery.objects.filter(tenant=live.tenant).exists())
    live.worker.wait_idle()
    live.papercups.clear_faults()
    settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS = WINDOW_OPEN  # the window the admin retry gets

    _, (_, bot) = _local(live, conversation_id)
    failure = FailedDelivery.objects.get(tenant=live.tenant)
    assert (bot.delivery_status, bot.delivery_attempts >= 2) == ("failed", True)
    assert bot.delivery_error.startswith("Gave up after the retry window: Papercups answered 503 to POST")
    assert (failure.kind, failure.message_public_id, failure.conversation_external_id, failure.retried_at) == (
        "message",
        bot.public_id,
        conversation_id,
        None,
    )
    assert (failure.error, failure.attempts, failure.content_preview) == (
        bot.delivery_error,
        bot.delivery_attempts,
        SHIPPING,
    )
    assert DELIVERIES.labels(channel="papercups", outcome="failed")._value.get() == failed_before + 1
    assert len(live.message_posts()) == bot.delivery_attempts
    assert live.bot_messages(conversation_id) == []

    staff = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}@netia.test", is_staff=True, is_superuser=True)
    try:
        client.force_login(staff)
        changelist = client.get(reverse("admin:webhooks_faileddelivery_changelist"))
        response = client.post(
            reverse("admin:webhooks_faileddelivery_changelist"),
            {"action": "retry", "_selected_action": [failure.pk]},
        )
    finally:
        staff.delete()
    (reply,) = _answered(live, conversation_id)

    assert changelist.status_code == 200
    assert "Gave up after the retry window" in changelist.content.decode()
    assert response.status_code == 302
    _, (_, bot) = _local(live, conversation_id)
    assert (bot.delivery_status, bot.external_id, reply["body"]) == ("sent", reply["id"], SHIPPING)
    assert FailedDelivery.objects.get(pk=failure.pk).retried_at is not None


def test_the_verify_handshake_passes_with_the_webhook_url_and_fails_with_a_wrong_token(live: Live) -> None:
    wrong = f"{live.server.url}/papercups/webhook?token=not-the-secret"

    assert live.papercups.verify_webhook_url(live.webhook_url) is True
    assert live.papercups.register_webhook(live.account, wrong) is False
    assert live.papercups.webhook_log[-1].status == 403


def test_closing_and_reopening_in_papercups_is_mirrored(live: Live) -> None:
    conversation_id, _ = _ask(live)
    _answered(live, conversation_id)
    agent_key = live.papercups.issue_api_key(live.agent)

    requests.put(
        f"{live.papercups.url}/api/v1/conversations/{conversation_id}",
        json={"conversation": {"status": "closed"}},
        headers={"Authorization": f"Bearer {agent_key}"},
        timeout=5,
    ).raise_for_status()
    live.worker.wait_idle()  # the worker has processed the stored conversation:updated (and read it back)
    closed = wait_until(lambda: (c := _local(live, conversation_id)[0]).status == "closed" and c)
    live.papercups.visitor_says(live.account, conversation_id, "When are you open?")
    _answered(live, conversation_id, count=2)

    assert (closed.status, closed.closed_at is not None) == ("closed", True)
    reopened = _local(live, conversation_id)[0]
    assert (reopened.status, reopened.closed_at) == ("bot", None)


def test_a_handoff_papercups_keeps_refusing_is_recorded_and_the_admin_retry_completes_it(
    live: Live, settings: Any, client: Any
) -> None:
    settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS = WINDOW_OPEN
    live.papercups.fail_next("PUT", "/api/v1/conversations/", 502, times=1000)
    conversation_id, _ = _ask(live, "Can I talk to a human please?")
    wait_until(lambda: len(live.papercups.requests_to("PUT", "/api/v1/conversations/")) >= 2)  # refused, retried
    settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS = WINDOW_CLOSED
    wait_until(lambda: FailedDelivery.objects.filter(tenant=live.tenant).exists())
    live.worker.wait_idle()
    live.papercups.clear_faults()
    settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS = WINDOW_OPEN  # the window the admin retry gets

    failure = FailedDelivery.objects.get(tenant=live.tenant)
    assert (failure.kind, failure.message_public_id, failure.conversation_external_id) == (
        "handoff",
        None,
        conversation_id,
    )
    assert failure.error.startswith("Papercups answered 502 to PUT /api/v1/conversations/")
    assert live.papercups.conversation(conversation_id)["assignee_id"] == live.account.bot.id
    assert _local(live, conversation_id)[0].handoff_sync_pending is False

    staff = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}@netia.test", is_staff=True, is_superuser=True)
    try:
        client.force_login(staff)
        client.post(
            reverse("admin:webhooks_faileddelivery_changelist"), {"action": "retry", "_selected_action": [failure.pk]}
        )
    finally:
        staff.delete()
    wait_until(lambda: live.papercups.conversation(conversation_id)["assignee_id"] is None)
    live.worker.wait_idle()

    in_papercups = live.papercups.conversation(conversation_id)
    assert (in_papercups["assignee_id"], in_papercups["priority"]) == (None, "priority")
    assert len(live.bot_messages(conversation_id)) == 2  # the notice and the note, once each
    assert _local(live, conversation_id)[0].handoff_sync_pending is False


def test_the_reconciliation_sweep_requeues_work_whose_task_was_lost(live: Live, settings: Any) -> None:
    settings.PAPERCUPS_SWEEP_GRACE_SECONDS = 0.2
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    stranded = live.papercups.start_conversation(live.account, "ann@example.com")
    live.worker.wait_idle()  # both conversation:created events processed
    with tenant_context(live.tenant):  # stored, but the tasks that should follow were lost (broker outage)
        unanswered = Conversation.objects.get(external_id=conversation["id"])
        message_record_visitor(conversation=unanswered, content="Do you ship to Canada?", external_id=str(uuid.uuid4()))
        undelivered = Conversation.objects.get(external_id=stranded["id"])
        Message.objects.create(
            conversation=undelivered, channel="papercups", role="bot", content="Hello!", delivery_status="pending"
        )
    time.sleep(0.3)

    channel_reconcile_all.delay()
    (reply,) = _answered(live, conversation["id"])
    wait_until(lambda: live.bot_messages(stranded["id"]))
    channel_reconcile_all.delay()
    live.worker.wait_idle()

    assert reply["body"] == SHIPPING
    assert [m["body"] for m in live.bot_messages(stranded["id"])] == ["Hello!"]
    assert [retval for _, retval in _runs(live, "channel_reconcile_tenant")] == [
        {"recorded": 0, "replies_queued": 1, "deliveries_queued": 1, "given_up": 0},
        {"recorded": 0, "replies_queued": 0, "deliveries_queued": 0, "given_up": 0},
    ]


def test_a_paused_tenant_hands_the_visitor_to_the_team_with_a_note_and_no_reply(live: Live) -> None:
    tenant_suspend(tenant=live.tenant, actor=SYSTEM)
    conversation_id, _ = _ask(live)

    (note,) = _answered(live, conversation_id)

    assert (note["type"], note["private"]) == ("note", True)
    assert note["body"] == (
        "Netia handed this conversation to your team (reason: tenant suspended).\n"
        "Last visitor message: Do you ship to Canada?"
    )
    in_papercups = live.papercups.conversation(conversation_id)
    assert (in_papercups["assignee_id"], in_papercups["priority"]) == (None, "priority")
    local, _ = _local(live, conversation_id)
    assert (local.status, local.handoff_reason) == ("human", "tenant_suspended")
