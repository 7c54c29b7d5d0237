"""POST /crisp/webhook through Django's request handling: the signature, what is stored, what is queued, what is
mirrored. Hooks are the Crisp simulator's own (kept unsent, then posted here); the live flow is in live/."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.test import TestCase
from django_tenants.utils import tenant_context

from chat.models import Conversation, Lead, Message
from chat.services import knowledge_article_create
from netia.metrics import WEBHOOK_EVENTS
from tests.fakes.crisp_server import FakeCrisp, HookDelivery, Website, sign_hook
from tests.webhooks.conftest import SHIPPING, stored
from webhooks import crisp as crisp_protocol
from webhooks.models import CrispConnection, InboundEvent

URL = "/crisp/webhook"


def post_hook(
    client: Any,
    delivery: HookDelivery | None,
    secret: str,
    *,
    raw: bytes | None = None,
    timestamp: str | None = "1700000000000",
    signature: str | None = None,
    process: bool = True,
) -> Any:
    """Post a hook as Crisp does: the raw body, its timestamp and signature headers. With `process`, the worker
    then processes what the request stored (Celery is eager); the reply that queues in turn stays queued."""
    body = raw if raw is not None else delivery.body if delivery is not None else b""
    headers = {}
    if timestamp is not None:
        headers["X-Crisp-Request-Timestamp"] = timestamp
        headers["X-Crisp-Signature"] = signature if signature is not None else sign_hook(secret, timestamp, body)
    with TestCase.captureOnCommitCallbacks() as queued:
        response = client.post(URL, data=body, content_type="application/json", headers=headers)
    if process:
        for callback in queued:
            callback()
    return response


def visitor_hook(crisp: FakeCrisp, website: Website, text: str = "Do you ship to Canada?") -> tuple[str, HookDelivery]:
    session = crisp.start_session(website, nickname="Joe")
    crisp.visitor_says(website, session, text)
    return session, crisp.hooks()[-1]


def key(session: str, message: dict[str, Any]) -> str:
    return f"{message['fingerprint']}@{session}"


# --- A visitor's question -------------------------------------------------------------------------------------------
def test_a_visitor_message_is_stored_once_and_its_reply_queued_without_calling_out(
    client, connected, crisp, website, django_capture_on_commit_callbacks
):
    with tenant_context(connected):
        knowledge_article_create(tenant=connected, title="Shipping", content=SHIPPING)
    session, hook = visitor_hook(crisp, website)
    (question,) = crisp.messages(session)

    with django_capture_on_commit_callbacks() as acknowledged:
        response = post_hook(client, hook, crisp.signing_secret, process=False)
    again = post_hook(client, hook, crisp.signing_secret, process=False)  # Crisp retrying the same hook

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert stored(connected) == ([], [])  # the request only stored the raw hook, once
    assert InboundEvent.objects.filter(tenant=connected).values_list("key", "event", "processed_at").get() == (
        f"message:{key(session, question)}",
        "message:send",
        None,
    )
    assert len(acknowledged) == 1  # its processing, queued once the event is committed

    with django_capture_on_commit_callbacks() as queued:
        acknowledged[0]()  # the worker (eager Celery) parses the hook
    assert InboundEvent.objects.get(tenant=connected).outcome == "accepted"
    assert stored(connected) == (
        [(session, "bot", "")],
        [(key(session, question), "visitor", question["content"], False)],
    )
    with tenant_context(connected):
        assert Conversation.objects.get().visitor_name == "Joe"
    assert crisp.requests == []  # nothing leaves inside the request
    assert len(queued) == 1

    with django_capture_on_commit_callbacks() as delivery:
        queued[0]()  # the reply task (eager): the turn, then its delivery queued
    with tenant_context(connected):
        visitor, bot = Message.objects.order_by("id")
    assert (bot.role, bot.content, bot.delivery_status, visitor.answered_by_id) == ("bot", SHIPPING, "pending", bot.pk)
    assert len(delivery) == 1
    assert crisp.requests == []


# --- Refusals: nothing stored ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no_headers", 401, "unauthenticated"),
        ("no_signature", 401, "unauthenticated"),
        ("wrong_secret", 403, "forbidden"),
        ("other_timestamp", 403, "forbidden"),
        ("tampered_body", 403, "forbidden"),
        ("not_hex", 403, "forbidden"),
    ],
)
def test_a_missing_or_bad_signature_is_refused_and_stores_nothing(
    client, connected, crisp, website, case, status, code
):
    _, hook = visitor_hook(crisp, website)
    refused = WEBHOOK_EVENTS.labels(channel="crisp", event="message:send", outcome=code)._value.get()
    raw, signature = hook.body, None
    timestamp: str | None = "1700000000000"
    if case == "no_headers":
        timestamp = None
    elif case == "no_signature":
        signature = ""
    elif case == "wrong_secret":
        signature = sign_hook("not-the-secret", "1700000000000", raw)
    elif case == "other_timestamp":
        signature = sign_hook(crisp.signing_secret, "1700000000001", raw)
    elif case == "tampered_body":
        signature = sign_hook(crisp.signing_secret, "1700000000000", raw)
        raw = raw.replace(b"Canada", b"Mexico")
    else:
        signature = "zz" * 32

    response = post_hook(client, None, crisp.signing_secret, raw=raw, timestamp=timestamp, signature=signature)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert stored(connected) == ([], [])
    assert WEBHOOK_EVENTS.labels(channel="crisp", event="message:send", outcome=code)._value.get() == refused + 1


def test_without_the_plugin_settings_the_channel_is_off(client, connected, crisp, website, settings):
    _, hook = visitor_hook(crisp, website)
    settings.CRISP_SIGNING_SECRET = ""

    response = post_hook(client, hook, crisp.signing_secret)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "crisp_not_configured"
    assert stored(connected) == ([], [])


ENVELOPE = 'Expected a Crisp hook: {"website_id", "event", "data", "timestamp"}.'


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "The body is not valid JSON."),
        (b"[]", ENVELOPE),
        (b'{"website_id": "W", "event": "message:send"}', ENVELOPE),
        (b'{"website_id": "nope", "event": "message:send", "data": {}}',
         "website_id must be a Crisp website id (a UUID)."),
        (b'{"website_id": "W", "event": "message:send", "data": {"session_id": "s"}}',
         "data.fingerprint must be an integer."),
        (b'{"website_id": "W", "event": "session:set_state", "data": {"session_id": "s", "state": "x"}}',
         "data.state must be pending, unresolved or resolved."),
    ],
)  # fmt: skip
def test_a_signed_but_malformed_hook_is_a_400_and_stores_nothing(client, connected, crisp, website, raw, message):
    raw = raw.replace(b'"W"', f'"{website.website_id}"'.encode())

    response = post_hook(client, None, crisp.signing_secret, raw=raw)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert stored(connected) == ([], [])


def test_hooks_of_websites_not_connected_and_unused_events_are_ignored(client, connected, crisp, website):
    stranger = crisp.add_website("Someone else")
    _, foreign = visitor_hook(crisp, stranger)
    body = {"website_id": website.website_id, "event": "message:compose:send", "data": {"session_id": "s"}}
    unused = json.dumps(body).encode()
    session = crisp.start_session(website)
    crisp.visitor_sends(website, session, "file", {"name": "a.png", "url": "https://x.test/a.png", "type": "image/png"})

    answers = [
        post_hook(client, foreign, crisp.signing_secret),
        post_hook(client, None, crisp.signing_secret, raw=unused),
        post_hook(client, crisp.hooks()[-1], crisp.signing_secret),
    ]

    assert [(a.status_code, a.json()) for a in answers] == [(200, {"status": "ignored"})] * 3
    assert stored(connected) == ([], [])


ERROR = b'{"error":{"code":"%s","message":"%s","details":{}}}'
HEADERS = (b"X-Crisp-Request-Timestamp", b"X-Crisp-Signature")
OFF = b"The Crisp channel is not set up on this Netia deployment."


def test_answers_are_the_apis_json_byte_for_byte(client, connected, crisp, website, settings):
    """The ack is served without DRF's machinery: its answers and errors stay exactly what DRF rendered."""
    _, hook = visitor_hook(crisp, website)

    accepted = post_hook(client, hook, crisp.signing_secret)
    duplicate = post_hook(client, hook, crisp.signing_secret)
    unsigned = post_hook(client, hook, crisp.signing_secret, timestamp=None)
    forged = post_hook(client, hook, "not-the-secret")
    malformed = post_hook(client, None, crisp.signing_secret, raw=b"{not json")
    settings.CRISP_SIGNING_SECRET = ""
    off = post_hook(client, hook, crisp.signing_secret)

    answers = [accepted, duplicate, unsigned, forged, malformed, off]
    assert [(a.status_code, a["Content-Type"], a.content) for a in answers] == [
        (200, "application/json", b'{"status":"accepted"}'),
        (200, "application/json", b'{"status":"duplicate"}'),
        (401, "application/json", ERROR % (b"unauthenticated", b"A Crisp hook carries %s and %s." % HEADERS)),
        (403, "application/json", ERROR % (b"forbidden", b"The hook signature is not valid.")),
        (400, "application/json", ERROR % (b"malformed", b"The body is not valid JSON.")),
        (503, "application/json", ERROR % (b"crisp_not_configured", OFF)),
    ]
    assert [a.get("Allow") for a in answers] == ["POST, OPTIONS"] * 6
    assert [a.get("Vary") for a in answers] == [None] * 6


def test_only_post_is_allowed(client, db):
    response = client.get(URL)

    assert (response.status_code, response["Allow"]) == (405, "POST, OPTIONS")
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- Humans in the Crisp inbox ---------------------------------------------------------------------------------------
def test_an_operators_reply_hands_the_conversation_to_the_team_and_a_note_does_not(client, connected, crisp, website):
    session, hook = visitor_hook(crisp, website)
    post_hook(client, hook, crisp.signing_secret)
    note = crisp.operator_says(website, session, "Known customer", note=True)
    post_hook(client, crisp.hooks()[-1], crisp.signing_secret)
    noted = stored(connected)[0]
    reply = crisp.operator_says(website, session, "Ana here: yes we do")

    response = post_hook(client, crisp.hooks()[-1], crisp.signing_secret)

    assert noted == [(session, "bot", "")]
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    conversations, messages = stored(connected)
    assert conversations == [(session, "human", "")]
    assert messages[1:] == [
        (key(session, note), "agent", "Known customer", True),
        (key(session, reply), "agent", "Ana here: yes we do", False),
    ]
    with tenant_context(connected):
        assert Conversation.objects.get().handoff_reason == "agent_replied"


@pytest.mark.parametrize("honoured", [True, False])
def test_the_echo_of_the_bots_own_message_is_not_taken_for_an_operator(client, connected, crisp, website, honoured):
    """Crisp may keep our fingerprint or not, and echo the message before its POST is answered (so before Netia
    stored the fingerprint Crisp returned), even with some user id: still recognised, the bot stays on."""
    crisp.honour_fingerprints, crisp.echo_user_id = honoured, "8d3c5d5e-3c57-4d8c-9b3f-2f7b1a9e4c11"
    session, hook = visitor_hook(crisp, website)
    post_hook(client, hook, crisp.signing_secret)
    with tenant_context(connected):
        conversation = Conversation.objects.get()
        bot = Message.objects.create(
            conversation=conversation, channel="crisp", role="bot", content="Hi!", delivery_status="sending"
        )
    body: dict[str, Any] = {
        "type": "text",
        "from": "operator",
        "origin": "chat",
        "content": "Hi!",
        "user": {"type": "participant", "nickname": "Assistant"},
        "fingerprint": crisp_protocol.fingerprint_for(bot.public_id),
    }
    requests.post(
        f"{crisp.api_url}/website/{website.website_id}/conversation/{session}/message",
        json=body,
        auth=(crisp.identifier, crisp.key),
        headers={"X-Crisp-Tier": "plugin"},
        timeout=5,
    ).raise_for_status()

    response = post_hook(client, crisp.hooks("message:received")[-1], crisp.signing_secret)

    # Our fingerprint is recognised in the request; the text of a message being sent only by the worker.
    assert (response.status_code, response.json()) == (200, {"status": "ignored" if honoured else "accepted"})
    echoes = InboundEvent.objects.filter(event="message:received").values_list("outcome", flat=True)
    assert list(echoes) == ([] if honoured else ["ignored"])
    assert stored(connected)[0] == [(session, "bot", "")]
    assert [role for _, role, _, _ in stored(connected)[1]] == ["visitor", "bot"]


def test_state_and_routing_are_mirrored(client, connected, crisp, website):
    session, hook = visitor_hook(crisp, website)
    post_hook(client, hook, crisp.signing_secret)
    operator = website.operators[0]
    statuses = []
    for change in (
        lambda: crisp.operator_sets_state(website, session, "resolved"),
        lambda: crisp.operator_sets_state(website, session, "unresolved"),
        lambda: crisp.operator_assigns(website, session, operator),
        lambda: crisp.operator_assigns(website, session, None),
    ):
        change()
        assert post_hook(client, crisp.hooks()[-1], crisp.signing_secret).json() == {"status": "accepted"}
        statuses.append(stored(connected)[0][0][1:])

    assert statuses == [("closed", ""), ("bot", ""), ("human", operator.user_id), ("human", "")]
    with tenant_context(connected):
        assert Conversation.objects.get().handoff_reason == "assigned_to_agent"


def test_the_visitors_email_phone_and_name_feed_the_lead(client, connected, crisp, website):
    session, hook = visitor_hook(crisp, website)
    post_hook(client, hook, crisp.signing_secret)

    crisp.visitor_sets(website, session, email="Joe@Example.com", phone="+1 415 555 2671", nickname="Joe Doe")
    answers = [post_hook(client, h, crisp.signing_secret).json() for h in crisp.hooks()[-3:]]
    crisp.visitor_sets(website, session, phone="not a phone")
    ignored = post_hook(client, crisp.hooks()[-1], crisp.signing_secret).json()

    assert [h.event for h in crisp.hooks()[-4:-1]] == ["session:set_email", "session:set_phone", "session:set_nickname"]
    assert (answers, ignored) == ([{"status": "accepted"}] * 3, {"status": "ignored"})
    with tenant_context(connected):
        lead = Lead.objects.get()
        conversation = Conversation.objects.get()
    assert lead.contact_info == {"name": "Joe Doe", "email": "Joe@example.com", "phone": "+14155552671"}
    assert (conversation.visitor_name, conversation.visitor_email) == ("Joe Doe", "Joe@example.com")


def test_removing_the_plugin_is_recorded_on_the_connection(client, connected, crisp, website):
    crisp.uninstall(website)

    response = post_hook(client, crisp.hooks()[-1], crisp.signing_secret)

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert CrispConnection.objects.get(tenant=connected).plugin_installed is False
