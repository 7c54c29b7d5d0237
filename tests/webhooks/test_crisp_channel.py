"""The Crisp adapter and client against the simulator: replies as the bot, lookup before resending, handoff,
reconciliation within the plugin's quota, and how each failure is classified for the retries."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from chat.services import bot_configuration_update
from netia.metrics import CHANNEL_QUOTA_LIMITED
from tenants.audit import SYSTEM
from tests.fakes.base import Reply
from webhooks import crisp as protocol
from webhooks.channels import DeliveryFailed, OutboundMessage
from webhooks.services import channel_reconcile, crisp_connection_set


def outbound(session: str, content: str = "Hello!", *, private: bool = False) -> OutboundMessage:
    return OutboundMessage(
        netia_message_id=uuid.uuid4(), conversation_external_id=session, content=content, private=private
    )


def test_replies_go_as_the_bot_with_its_avatar_and_notes_as_private_notes(connected, crisp, website):
    session = crisp.start_session(website)
    reply, note = outbound(session, "We ship to Canada."), outbound(session, "Handed over", private=True)
    with tenant_context(connected):
        bot_configuration_update(tenant=connected, bot_name="Acme Bot", avatar_url="https://acme.test/bot.png")
        adapter = protocol.CrispAdapter(connected)
        keys = [adapter.send(reply), adapter.send(note)]

    sent = crisp.messages(session)
    user = {"type": "participant", "nickname": "Acme Bot", "avatar": "https://acme.test/bot.png"}
    assert [(m["type"], m["from"], m["content"], m["user"]) for m in sent] == [
        ("text", "operator", "We ship to Canada.", user),
        ("note", "operator", "Handed over", user),
    ]
    assert [m["fingerprint"] for m in sent] == [
        protocol.fingerprint_for(reply.netia_message_id),
        protocol.fingerprint_for(note.netia_message_id),
    ]
    assert keys == [f"{m['fingerprint']}@{session}" for m in sent]


@pytest.mark.parametrize("operator", [True, False])
def test_a_handoff_marks_the_conversation_unresolved_and_routes_it_to_the_chosen_operator(
    tenant, crisp, website, operator
):
    chosen = website.operators[0].user_id if operator else ""
    crisp_connection_set(tenant=tenant, website_id=website.website_id, handoff_operator_id=chosen, actor=SYSTEM)
    session = crisp.start_session(website)
    crisp.requests.clear()

    with tenant_context(tenant):
        protocol.CrispAdapter(tenant).hand_off(conversation_external_id=session)

    calls = [(r.method, r.path.rsplit("/", 1)[-1], r.json()) for r in crisp.requests]
    expected: list[tuple[str, str, Any]] = [("PATCH", "state", {"state": "unresolved"})]
    if operator:
        expected.append(("PATCH", "routing", {"assigned": {"user_id": chosen}}))
    assert calls == expected
    conversation = crisp.conversation(session)
    assert (conversation["state"], conversation["assigned"]) == (
        "unresolved",
        {"user_id": chosen} if operator else None,
    )


def test_before_resending_the_adapter_finds_what_crisp_already_has(connected, crisp, website):
    session = crisp.start_session(website)
    kept, renamed, known, never = (outbound(session, text) for text in ("one", "two", "three", "four"))
    with tenant_context(connected):
        adapter = protocol.CrispAdapter(connected)
        adapter.send(kept)
        crisp.honour_fingerprints = False
        renamed_key = adapter.send(renamed)
        known_key = adapter.send(known)
        conversation = Conversation.objects.create(channel="crisp", external_id=session)
        Message.objects.create(
            conversation=conversation, channel="crisp", role="bot", content="three", external_id=known_key
        )

        found = [adapter.find_sent(m) for m in (kept, renamed, known, never)]

    assert found == [f"{protocol.fingerprint_for(kept.netia_message_id)}@{session}", renamed_key, None, None]


def test_reconciliation_stores_what_the_hooks_missed_and_skips_unchanged_conversations(
    connected, crisp, website, django_capture_on_commit_callbacks
):
    missed = crisp.start_session(website)
    message = crisp.visitor_says(website, missed, "Do you ship to Canada?")  # no hook reached Netia

    with tenant_context(connected), django_capture_on_commit_callbacks() as queued:
        first = channel_reconcile(tenant=connected, channel="crisp")
        calls_first = len(crisp.requests)
        second = channel_reconcile(tenant=connected, channel="crisp")
        stored = list(Message.objects.values_list("external_id", "role", "content"))

    assert (first.recorded, first.replies_queued, first.channel_error) == (1, 1, "")
    assert (second.recorded, second.channel_error) == (0, "")
    assert stored == [(f"{message['fingerprint']}@{missed}", "visitor", "Do you ship to Canada?")]
    assert calls_first == 2  # the conversations page, then that conversation's messages
    assert [r.path.rsplit("/", 2)[-2] for r in crisp.requests[calls_first:]] == ["conversations"]  # unchanged: skipped
    assert len(queued) == 1


@pytest.mark.parametrize("status", [429, 420])
def test_a_spent_quota_pauses_the_reconciliation_until_the_backoff_ends(connected, crisp, website, status):
    crisp.start_session(website)
    crisp.daily_quota, crisp.quota_status, crisp.quota_retry_after = 0, status, 120
    limited = CHANNEL_QUOTA_LIMITED.labels(channel="crisp")._value.get()

    with tenant_context(connected):
        refused = channel_reconcile(tenant=connected, channel="crisp")
        asked = len(crisp.requests)
        waiting = channel_reconcile(tenant=connected, channel="crisp")
        until = protocol.quota_backoff_until()
        crisp.reset_quota()
        crisp.daily_quota = None
        protocol.quota_backoff_clear()  # the backoff has run out
        resumed = channel_reconcile(tenant=connected, channel="crisp")

    assert refused.channel_error.startswith(f"Crisp answered {status} to GET /website/")
    assert waiting.channel_error.startswith("Crisp's plugin quota is spent: the reconciliation waits until")
    assert asked == 1
    assert len(crisp.requests) == 2  # nothing asked while waiting; one page once resumed
    assert until is not None
    assert timedelta(seconds=100) < until - timezone.now() <= timedelta(seconds=120)
    assert resumed.channel_error == ""
    assert CHANNEL_QUOTA_LIMITED.labels(channel="crisp")._value.get() == limited + 1


def test_without_retry_after_the_backoff_doubles_up_to_the_maximum(settings):
    settings.CRISP_QUOTA_BACKOFF_SECONDS, settings.CRISP_QUOTA_BACKOFF_MAX_SECONDS = 60, 200
    error = protocol.CrispError("quota", problem="quota", retryable=True, status=429)

    waits = [protocol.quota_backoff_record(error) for _ in range(4)]

    assert waits == [60, 120, 200, 200]


@pytest.mark.parametrize(
    ("reply", "delay", "problem", "retryable"),
    [
        (Reply(401, {"error": True, "reason": "unauthorized", "data": {}}), 0, "bad_token", False),
        (Reply(403, {"error": True, "reason": "not_allowed", "data": {}}), 0, "not_allowed", False),
        (Reply(400, {"error": True, "reason": "invalid_data", "data": {}}), 0, "rejected", False),
        (Reply(502, None, raw=b"<html>Bad gateway</html>"), 0, "server_error", True),
        (Reply(200, {"ok": True}), 0, "unexpected_response", True),
        (None, 3, "timeout", True),
    ],
)
def test_failures_are_classified_for_the_retries(connected, crisp, website, settings, reply, delay, problem, retryable):
    settings.CRISP_TIMEOUT_SECONDS = 1.0
    session = crisp.start_session(website)
    crisp.inject_fault("POST", "/v1/website/", reply=reply, delay=delay)

    with tenant_context(connected), pytest.raises(DeliveryFailed) as raised:
        protocol.CrispAdapter(connected).send(outbound(session))

    assert raised.value.retryable is retryable
    crisp.inject_fault("POST", "/v1/website/", reply=reply, delay=delay)
    with pytest.raises(protocol.CrispError) as direct:
        protocol.client().message_send(website.website_id, session, {"type": "text"})
    assert (direct.value.problem, direct.value.retryable) == (problem, retryable)


def test_the_read_before_a_delivery_looks_up_only_attempts_with_no_known_outcome(connected, crisp, website):
    session = crisp.start_session(website)
    with tenant_context(connected):
        adapter = protocol.CrispAdapter(connected)
        conversation = Conversation.objects.create(channel="crisp", external_id=session)

        def bot_message(content: str, status: str) -> Message:
            return Message.objects.create(
                conversation=conversation, channel="crisp", role="bot", content=content, delivery_status=status
            )

        reached, lost = bot_message("We ship to Canada.", "sending"), bot_message("Anything else?", "sending")
        bot_message("Not tried yet", "pending")
        adapter.send(replace(outbound(session, reached.content), netia_message_id=reached.public_id))
        crisp.requests.clear()
        remote = adapter.conversation_read(conversation_external_id=session)
        Message.objects.filter(delivery_status="sending").update(delivery_status="sent")
        asked = len(crisp.requests)
        quiet = adapter.conversation_read(conversation_external_id=session)

    fingerprint = protocol.fingerprint_for(reached.public_id)
    assert remote.sent == {str(reached.public_id): f"{fingerprint}@{session}"}
    assert str(lost.public_id) not in remote.sent
    # Crisp's hooks keep the state: the read reports nothing about it (the quota is spent only on lookups).
    assert (remote.state.closed, remote.state.assignee_external_id, remote.state.assigned_to_human) == (
        None,
        None,
        False,
    )
    assert asked >= 2  # one lookup per attempt with no known outcome
    assert (quiet.sent, len(crisp.requests)) == ({}, asked)  # nothing unsure: no call at all
