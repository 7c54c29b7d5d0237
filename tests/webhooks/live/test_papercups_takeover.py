"""Papercups as it really behaves: webhooks made in its dashboard never carry `conversation:updated`, and
webhooks arrive concurrently and out of order. Netia reads the conversation before every reply, so a human
taking over or an agent closing the chat silences the bot all the same; and each visitor turn gets one reply.
"""

from __future__ import annotations

import functools
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from tests.webhooks.conftest import SHIPPING, wait_until
from tests.webhooks.live.conftest import Live


def _as_agent(live: Live, conversation_id: str, changes: dict[str, Any]) -> None:
    """An agent changes the conversation in Papercups' dashboard."""
    live.papercups.agent_updates(live.account, conversation_id, **changes)


def _local(live: Live, conversation_id: str) -> tuple[Conversation, list[Message]]:
    with tenant_context(live.tenant):
        conversation = Conversation.objects.get(external_id=conversation_id)
        return conversation, list(conversation.messages.order_by("id"))


def _status(live: Live, conversation_id: str) -> str:
    """The local conversation's status; "" while the worker has not stored the event that creates it."""
    with tenant_context(live.tenant):
        found = Conversation.objects.filter(external_id=conversation_id).values_list("status", flat=True).first()
    return found or ""


def test_a_human_assigned_without_the_scope_silences_the_bot(live_unscoped: Live) -> None:
    live = live_unscoped
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    live.papercups.visitor_says(live.account, conversation["id"], "Do you ship to Canada?")
    wait_until(lambda: live.bot_messages(conversation["id"]))
    live.worker.wait_idle()

    _as_agent(live, conversation["id"], {"assignee_id": live.agent.id})  # no webhook reaches Netia
    live.papercups.visitor_says(live.account, conversation["id"], "When are you open?")
    wait_until(lambda: _status(live, conversation["id"]) == "human")
    live.worker.wait_idle()

    local, messages = _local(live, conversation["id"])
    assert live.papercups.webhooks("conversation:updated") == []
    assert [m["body"] for m in live.bot_messages(conversation["id"])] == [SHIPPING]  # nothing after the takeover
    assert (local.status, local.handoff_reason, local.assignee_external_id) == (
        "human",
        "assigned_to_agent",
        str(live.agent.id),
    )
    withdrawn = [m for m in messages if m.role == "bot"][-1]
    assert (withdrawn.delivery_status, withdrawn.delivery_attempts) == ("canceled", 0)
    assert live.papercups.conversation(conversation["id"])["assignee_id"] == live.agent.id  # not taken from Ana


def test_a_chat_closed_by_an_agent_without_the_scope_gets_no_late_reply(live_unscoped: Live) -> None:
    live = live_unscoped
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    live.papercups.visitor_says(live.account, conversation["id"], "Do you ship to Canada?")
    _as_agent(live, conversation["id"], {"status": "closed"})  # within the quiet period, before the bot answers

    wait_until(lambda: _status(live, conversation["id"]) == "closed")
    live.worker.wait_idle()

    local, messages = _local(live, conversation["id"])
    assert live.bot_messages(conversation["id"]) == []
    assert [(m.role, m.delivery_status) for m in messages] == [("visitor", ""), ("bot", "canceled")]
    assert local.closed_at is not None


def test_webhooks_delivered_concurrently_give_each_turn_one_reply(live: Live) -> None:
    live.papercups.sync_webhooks = False  # each event from its own thread, as Papercups' Task.start does
    conversations = [live.papercups.start_conversation(live.account, f"v{i}@example.com") for i in range(4)]
    live.papercups.wait_for_webhooks()
    said: list[dict[str, Any]] = []

    def visitor(conversation_id: str) -> None:
        for text in ("Hi", "quick question", "do you ship to Canada?"):
            said.append(live.papercups.visitor_says(live.account, conversation_id, text))

    threads = [threading.Thread(target=visitor, args=(c["id"],)) for c in conversations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    live.papercups.wait_for_webhooks()
    duplicates = [live.post_webhook({"event": "message:created", "payload": m}) for m in said[::3]]
    for conversation in conversations:
        wait_until(functools.partial(live.bot_messages, conversation["id"]), timeout=20)
    live.worker.wait_idle()
    live.papercups.wait_for_webhooks()

    assert {d.json()["status"] for d in duplicates} == {"duplicate"}
    for conversation in conversations:
        (reply,) = live.bot_messages(conversation["id"])
        _, messages = _local(live, conversation["id"])
        bots = [m for m in messages if m.role == "bot"]
        visitors = [m for m in messages if m.role == "visitor"]
        assert reply["body"] == SHIPPING
        assert len(visitors) == 3
        assert [(b.delivery_status, b.external_id) for b in bots] == [("sent", reply["id"])]
        assert {v.answered_by_id for v in visitors} == {bots[0].pk}


def test_the_optional_scoped_webhook_setup_mirrors_an_assignment_at_once(live_unscoped: Live, monkeypatch) -> None:
    live = live_unscoped
    live.papercups.set_password(live.agent, "correct horse")
    monkeypatch.setenv("PAPERCUPS_PASSWORD", "correct horse")
    out = StringIO()

    call_command(
        "papercups_webhook_subscribe", "--tenant", live.tenant.schema_name, "--email", live.agent.email, stdout=out
    )
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    _as_agent(live, conversation["id"], {"assignee_id": live.agent.id})  # no visitor message needed now
    wait_until(lambda: _status(live, conversation["id"]) == "human")
    live.worker.wait_idle()

    (scoped,) = [s for s in live.account.subscriptions if s.scope]
    assert (scoped.scope, scoped.verified) == ("conversation:updated", True)
    assert out.getvalue() == f"Subscription {scoped.id} with scope 'conversation:updated', verified.\n"
    (login,) = live.papercups.requests_to("POST", "/api/session")
    assert login.json() == {"user": {"email": live.agent.email, "password": "correct horse"}}
    (create,) = live.papercups.requests_to("POST", "/api/event_subscriptions")
    assert not create.headers["authorization"].startswith("Bearer ")  # the dashboard's session token, as is
    assert [d.event for d in live.papercups.webhooks("conversation:updated")] == ["conversation:updated"]


def test_the_scoped_setup_with_a_wrong_password_says_so(live_unscoped: Live, monkeypatch) -> None:
    monkeypatch.setenv("PAPERCUPS_PASSWORD", "wrong")

    with pytest.raises(CommandError, match=r"answered 401 to POST /api/session\. \(bad_key\)"):
        call_command(
            "papercups_webhook_subscribe",
            "--tenant",
            str(live_unscoped.tenant.pk),
            "--email",
            live_unscoped.agent.email,
        )
    assert [s for s in live_unscoped.account.subscriptions if s.scope] == []
