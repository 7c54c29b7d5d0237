"""End to end through the Crisp simulator: signed plugin hooks into a live Netia, a real Celery worker, replies
back over HTTP as the bot. Exactly one reply per visitor turn; the bot silent once a human has the chat.

The simulator echoes every message the plugin posts back as `message:received`, synchronously, before the
POST is answered (the earliest Crisp could): each test also proves the bot does not take its echo for a human.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from tenants.audit import SYSTEM
from tenants.services import tenant_suspend
from tests.fakes.crisp_server import HookDelivery, sign_hook
from tests.webhooks.conftest import SHIPPING, wait_until
from tests.webhooks.live.conftest import QUIET, CrispLive, TaskTracker
from webhooks import crisp as protocol
from webhooks.models import ChannelCircuit
from webhooks.services import outbox_deliver
from webhooks.tasks import channel_reconcile_all

HANDOFF_NOTICE = "I'm passing you to a member of our team. They will reply here shortly."


def _local(live: CrispLive, session: str) -> tuple[Conversation, list[Message]]:
    with tenant_context(live.tenant):
        conversation = Conversation.objects.get(external_id=session)
        return conversation, list(conversation.messages.order_by("id"))


def _answered(live: CrispLive, session: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait for `count` bot messages in the Crisp conversation and for the worker to be idle; return them."""
    wait_until(lambda: len(live.bot_messages(session)) >= count)
    live.worker.wait_idle()
    return live.bot_messages(session)


def _runs(live: CrispLive, task: str) -> list[tuple[str, Any]]:
    assert isinstance(live.worker, TaskTracker)
    return live.worker.runs(task)


def _statuses(deliveries: list[HookDelivery]) -> list[Any]:
    """What Netia answered to each hook's last attempt."""
    return [(d.attempts[-1].status, json.loads(d.attempts[-1].body)) for d in deliveries]


def test_a_visitors_question_gets_exactly_one_reply_as_the_bot(crisp_live: CrispLive) -> None:
    session = crisp_live.crisp.start_session(crisp_live.website, nickname="Joe")
    question = crisp_live.crisp.visitor_says(crisp_live.website, session, "Do you ship to Canada?")

    (reply,) = _answered(crisp_live, session)

    local, (visitor, bot) = _local(crisp_live, session)
    assert (local.channel, local.status, local.visitor_name) == ("crisp", "bot", "Joe")
    assert (visitor.external_id, visitor.answered_by_id) == (f"{question['fingerprint']}@{session}", bot.pk)
    assert (bot.content, bot.delivery_status, bot.delivery_attempts) == (SHIPPING, "sent", 1)
    assert bot.external_id == f"{reply['fingerprint']}@{session}"
    assert (reply["type"], reply["from"], reply["content"], reply["user"]["nickname"]) == (
        "text",
        "operator",
        SHIPPING,
        "Assistant",
    )
    assert protocol.is_own_fingerprint(reply["fingerprint"])
    assert _statuses(crisp_live.crisp.hooks()) == [
        (200, {"status": "accepted"}),  # the visitor's message:send
        (200, {"status": "ignored"}),  # the echo of the bot's reply: not a human
    ]
    assert len(crisp_live.crisp.requests_to("POST", "/v1/website/")) == 1


def test_a_duplicated_hook_is_stored_once_and_answered_once(crisp_live: CrispLive) -> None:
    crisp = crisp_live.crisp
    session = crisp.start_session(crisp_live.website)
    crisp.drop_next_hook(event="message:send")
    crisp.visitor_says(crisp_live.website, session, "Do you ship to Canada?")
    (lost,) = [d for d in crisp.hook_log if d.dropped]
    copies: list[HookDelivery] = []
    threads = [threading.Thread(target=lambda: copies.append(crisp.redeliver(lost))) for _ in range(5)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (reply,) = _answered(crisp_live, session)
    late = crisp.redeliver(lost)
    crisp_live.worker.wait_idle()

    assert sorted(status["status"] for _, status in _statuses(copies)) == ["accepted"] + ["duplicate"] * 4
    assert _statuses([late]) == [(200, {"status": "duplicate"})]
    assert reply["content"] == SHIPPING
    assert len(crisp.requests_to("POST", "/v1/website/")) == 1
    assert [retval for _, retval in _runs(crisp_live, "channel_reply")] == ["answered"]


def test_a_burst_gets_one_reply_and_the_next_turn_its_own(crisp_live: CrispLive) -> None:
    crisp, website = crisp_live.crisp, crisp_live.website
    session = crisp.start_session(website)
    for text in ("Hi", "quick question", "do you ship to Canada?"):
        crisp.visitor_says(website, session, text)
    (first,) = _answered(crisp_live, session)

    crisp.visitor_says(website, session, "When are you open?")
    _, second = _answered(crisp_live, session, count=2)

    _, messages = _local(crisp_live, session)
    burst, turn = (m for m in messages if m.role == "bot")
    assert [(m.role, m.answered_by_id) for m in messages] == [
        ("visitor", burst.pk),
        ("visitor", burst.pk),
        ("visitor", burst.pk),
        ("bot", None),
        ("visitor", turn.pk),
        ("bot", None),
    ]
    assert (first["content"], second["content"]) == (SHIPPING, "We are open Monday to Friday from 9:00 to 18:00.")


def test_an_operators_reply_in_crisp_stops_the_bot(crisp_live: CrispLive) -> None:
    crisp, website = crisp_live.crisp, crisp_live.website
    session = crisp.start_session(website)
    crisp.visitor_says(website, session, "Do you ship to Canada?")
    _answered(crisp_live, session)

    crisp.operator_says(website, session, "Ana here: and we ship to Mexico too.")
    crisp.visitor_says(website, session, "Great, and to Peru?")
    crisp_live.worker.wait_idle()
    time.sleep(QUIET + 0.1)
    crisp_live.worker.wait_idle()

    local, messages = _local(crisp_live, session)
    assert (local.status, local.handoff_reason) == ("human", "agent_replied")
    assert [m.role for m in messages] == ["visitor", "bot", "agent", "visitor"]
    assert len(crisp_live.bot_messages(session)) == 1


def test_a_badly_signed_hook_is_refused_and_nothing_is_stored(crisp_live: CrispLive) -> None:
    crisp = crisp_live.crisp
    crisp.signing_secret = "not-the-plugins-secret"
    session = crisp.start_session(crisp_live.website)
    crisp.visitor_says(crisp_live.website, session, "Do you ship to Canada?")
    (hook,) = crisp.hooks()
    forged = requests.post(
        f"{crisp_live.server.url}/crisp/webhook",
        data=hook.body,
        headers={"X-Crisp-Request-Timestamp": "1", "Content-Type": "application/json"},
        timeout=5,
    )

    assert [a.status for a in hook.attempts] == [403, 403, 403]  # every attempt Crisp made
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "unauthenticated")
    with tenant_context(crisp_live.tenant):
        assert (Conversation.objects.count(), Message.objects.count()) == (0, 0)
    assert sign_hook("not-the-plugins-secret", hook.attempts[0].timestamp, hook.body) == hook.attempts[0].signature


def test_a_visitor_asking_for_a_human_gets_the_notice_and_the_team_a_note_an_unresolved_and_routed_chat(
    crisp_live: CrispLive,
) -> None:
    crisp, website = crisp_live.crisp, crisp_live.website
    session = crisp.start_session(website)
    crisp.visitor_says(website, session, "Can I talk to a human please?")

    notice, note = _answered(crisp_live, session, count=2)

    assert (notice["type"], notice["content"]) == ("text", HANDOFF_NOTICE)
    assert (note["type"], note["content"]) == (
        "note",
        "Netia handed this conversation to your team (reason: visitor asked for human).\n"
        "Last visitor message: Can I talk to a human please?",
    )
    conversation = crisp.conversation(session)
    assert (conversation["state"], conversation["assigned"]) == ("unresolved", {"user_id": crisp_live.operator.user_id})
    local, messages = _local(crisp_live, session)
    assert (local.status, local.handoff_sync_pending) == ("human", False)
    assert [(m.role, m.kind, m.delivery_status) for m in messages] == [
        ("visitor", "reply", ""),
        ("bot", "handoff_notice", "sent"),
        ("system", "note", "sent"),
    ]


def test_a_tenant_paused_by_billing_hands_the_chat_over_once_with_a_note(crisp_live: CrispLive) -> None:
    crisp, website = crisp_live.crisp, crisp_live.website
    tenant_suspend(tenant=crisp_live.tenant, actor=SYSTEM)
    session = crisp.start_session(website)
    crisp.visitor_says(website, session, "Do you ship to Canada?")
    (note,) = _answered(crisp_live, session)

    crisp.visitor_says(website, session, "Hello?")
    crisp_live.worker.wait_idle()
    time.sleep(QUIET + 0.1)
    crisp_live.worker.wait_idle()

    assert (note["type"], note["content"]) == (
        "note",
        "Netia handed this conversation to your team (reason: tenant suspended).\n"
        "Last visitor message: Do you ship to Canada?",
    )
    assert crisp_live.bot_messages(session) == [note]  # once: nothing for the second message
    assert crisp.conversation(session)["state"] == "unresolved"
    local, _ = _local(crisp_live, session)
    assert (local.status, local.handoff_reason) == ("human", "tenant_suspended")
    assert len(crisp.requests_to("PATCH", f"/v1/website/{website.website_id}/conversation/{session}/state")) == 1


def test_a_dropped_hook_is_recovered_by_the_reconciliation_once(crisp_live: CrispLive) -> None:
    crisp, website = crisp_live.crisp, crisp_live.website
    session = crisp.start_session(website)
    crisp.drop_next_hook(event="message:send")
    question = crisp.visitor_says(website, session, "Do you ship to Canada?")
    time.sleep(QUIET + 0.1)
    assert crisp_live.bot_messages(session) == []

    channel_reconcile_all.delay(channel="crisp")
    (reply,) = _answered(crisp_live, session)
    channel_reconcile_all.delay(channel="crisp")
    crisp_live.worker.wait_idle()

    assert reply["content"] == SHIPPING
    _, messages = _local(crisp_live, session)
    assert [(m.role, m.external_id) for m in messages] == [
        ("visitor", f"{question['fingerprint']}@{session}"),
        ("bot", f"{reply['fingerprint']}@{session}"),
    ]
    assert [retval for _, retval in _runs(crisp_live, "channel_reconcile_tenant")] == [
        {"recorded": 1, "replies_queued": 1, "deliveries_queued": 0, "given_up": 0},
        {"recorded": 0, "replies_queued": 0, "deliveries_queued": 0, "given_up": 0},
    ]


def _bot_message_pending(live: CrispLive, content: str) -> int:
    conversation = Conversation.objects.create(channel="crisp", external_id=live.crisp.start_session(live.website))
    Message.objects.create(
        conversation=conversation, channel="crisp", role="bot", content=content, delivery_status="pending"
    )
    return conversation.pk


def test_with_crisp_down_the_channels_circuit_opens_after_its_failures_in_a_row(
    crisp_live: CrispLive, settings
) -> None:
    # The read before each delivery asks Crisp nothing (no attempt of unknown outcome): it must not count as
    # Crisp answering, or each new conversation's read would forget the failures and the circuit never open.
    live, threshold = crisp_live, settings.CHANNEL_CIRCUIT_FAILURES
    live.crisp.fail_next("POST", "/v1/website/", 503, times=threshold * 3)
    with tenant_context(live.tenant):
        outcomes = [
            outbox_deliver(tenant=live.tenant, conversation_id=_bot_message_pending(live, f"Reply {number}"))
            for number in range(threshold)
        ]

    circuit = ChannelCircuit.objects.get(tenant=live.tenant, channel="crisp")
    assert [(outcome.sent, outcome.retry_in is not None) for outcome in outcomes] == [(0, True)] * threshold
    assert (circuit.failures, circuit.open_until is not None) == (threshold, True)


def test_a_delivery_that_reaches_crisp_forgets_the_channels_failures(crisp_live: CrispLive) -> None:
    live = crisp_live
    ChannelCircuit.objects.create(tenant=live.tenant, channel="crisp", failures=2, last_error="503")
    with tenant_context(live.tenant):
        outcome = outbox_deliver(tenant=live.tenant, conversation_id=_bot_message_pending(live, "Hi"))

    assert outcome.sent == 1
    assert ChannelCircuit.objects.get(tenant=live.tenant, channel="crisp").failures == 0
