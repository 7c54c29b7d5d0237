"""POST /papercups/webhook through Django's request handling: authentication, validation, what is stored, what
is queued. Payloads come from the Papercups simulator; the end-to-end flow is in live/.

Over ~400 lines on purpose: one test per webhook outcome, sharing this module's payload helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from chat.services import knowledge_article_create, message_record_visitor
from netia.metrics import WEBHOOK_EVENTS
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tests.fakes.papercups_server import Account, FakePapercups
from tests.webhooks.conftest import SHIPPING, papercups_connect, stored
from webhooks import papercups as papercups_module
from webhooks.channels import ConversationState
from webhooks.models import InboundEvent
from webhooks.services import channel_conversation_sync, papercups_webhook_secret_rotate

URL = "/papercups/webhook"
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


@pytest.fixture
def connected(tenant: Tenant, account: Account, papercups: FakePapercups) -> Tenant:
    """Tenant A connected to its simulated Papercups account."""
    return papercups_connect(tenant, account, papercups)


def sign(secret: str, raw: bytes, timestamp: int | None = None) -> tuple[str, str]:
    """(X-Netia-Signature, X-Netia-Timestamp) as a signing proxy computes them."""
    sent = str(int(time.time()) if timestamp is None else timestamp)
    return hmac.new(secret.encode(), sent.encode() + b"." + raw, hashlib.sha256).hexdigest(), sent


def post(
    client: Any,
    body: Any,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    signature: str | None = None,
    timestamp: str | None = None,
    process: bool = True,
) -> Any:
    """POST the webhook; with `process`, the worker then processes what the request stored (Celery is eager).

    Only the processing queued by the request runs: the reply it queues in turn stays queued.
    """
    data = raw if raw is not None else json.dumps(body).encode()
    url = URL if token is None else f"{URL}?token={token}"
    headers = {"X-Netia-Signature": signature} if signature is not None else {}
    if signature is not None:
        headers["X-Netia-Timestamp"] = str(int(time.time())) if timestamp is None else timestamp
    with TestCase.captureOnCommitCallbacks() as queued:
        response = client.post(url, data=data, content_type="application/json", headers=headers)
    if process:
        for callback in queued:
            callback()
    return response


def visitor_event(papercups: FakePapercups, account: Account, text: str = "Do you ship to Canada?") -> dict[str, Any]:
    conversation = papercups.start_conversation(account, "joe@example.com", customer_name="Joe")
    return {"event": "message:created", "payload": papercups.visitor_says(account, conversation["id"], text)}


# --- Receiving a visitor's message ----------------------------------------------------------------------------------
def test_a_visitor_message_is_stored_and_its_reply_queued_without_calling_out(
    client, connected, papercups, account, django_capture_on_commit_callbacks
):
    with tenant_context(connected):
        knowledge_article_create(tenant=connected, title="Shipping", content=SHIPPING)
    event = visitor_event(papercups, account)
    payload = event["payload"]

    with django_capture_on_commit_callbacks() as acknowledged:
        response = post(client, event, token=connected.webhook_secret, process=False)

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert stored(connected) == ([], [])  # the request only stored the raw event
    assert InboundEvent.objects.filter(tenant=connected).values_list("key", "event", "processed_at").get() == (
        f"message:{payload['id']}",
        "message:created",
        None,
    )
    assert len(acknowledged) == 1  # its processing, queued once the event is committed

    with django_capture_on_commit_callbacks() as queued:
        acknowledged[0]()  # the worker (eager Celery) parses the event
    assert InboundEvent.objects.get(tenant=connected).outcome == "accepted"
    assert stored(connected) == (
        [(payload["conversation_id"], "bot", "")],
        [(payload["id"], "visitor", "Do you ship to Canada?", False)],
    )
    with tenant_context(connected):
        conversation = Conversation.objects.get()
    assert (conversation.visitor_name, conversation.visitor_email, conversation.external_customer_id) == (
        "Joe",
        "joe@example.com",
        payload["customer_id"],
    )
    assert papercups.requests == []  # no outbound call inside the request
    assert len(queued) == 1  # the reply task, queued once the rows are committed

    with django_capture_on_commit_callbacks() as delivery:
        queued[0]()  # Celery is eager in these tests: the reply task runs now
    with tenant_context(connected):
        question, bot = Message.objects.order_by("id")
    assert (bot.role, bot.content, bot.delivery_status, question.answered_by_id) == ("bot", SHIPPING, "pending", bot.pk)
    assert len(delivery) == 1  # its delivery, queued in turn
    assert papercups.requests == []


def test_a_visitor_message_holding_an_overlong_word_is_answered(
    client, connected, papercups, account, django_capture_on_commit_callbacks
):
    with tenant_context(connected):
        knowledge_article_create(tenant=connected, title="Shipping", content=SHIPPING)
    event = visitor_event(papercups, account, "Do you ship to Canada? " + "x" * 2100)  # PostgreSQL's lexemes: 2,047 B

    with django_capture_on_commit_callbacks() as acknowledged:
        assert post(client, event, token=connected.webhook_secret, process=False).status_code == 200
    with django_capture_on_commit_callbacks() as queued:
        acknowledged[0]()  # the worker (eager Celery) parses the event
    queued[0]()  # the reply task: the turn, its knowledge search included

    with tenant_context(connected):
        bot = Message.objects.get(role="bot")
    assert bot.content == SHIPPING


def test_a_duplicate_delivery_is_acknowledged_and_changes_nothing(
    client, connected, papercups, account, django_capture_on_commit_callbacks
):
    event = visitor_event(papercups, account)
    post(client, event, token=connected.webhook_secret)
    before = stored(connected)

    with django_capture_on_commit_callbacks() as queued:
        response = post(client, event, token=connected.webhook_secret)

    assert (response.status_code, response.json()) == (200, {"status": "duplicate"})
    assert stored(connected) == before
    assert queued == []
    assert InboundEvent.objects.filter(tenant=connected).count() == 1


@pytest.mark.parametrize("prefix", ["", "sha256="])
def test_an_hmac_signature_of_the_raw_body_authenticates(client, connected, papercups, account, prefix):
    raw = json.dumps(visitor_event(papercups, account)).encode()
    signature, sent = sign(connected.webhook_secret, raw)

    response = post(client, None, raw=raw, signature=prefix + signature, timestamp=sent)

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert len(stored(connected)[1]) == 1


@pytest.mark.parametrize(
    ("age", "timestamp", "status"),
    [(-305, None, 401), (305, None, 401), (0, "", 401), (0, "yesterday", 401), (-290, None, 200)],
)
def test_a_signature_is_refused_outside_the_five_minute_window(
    client, connected, papercups, account, age, timestamp, status
):
    raw = json.dumps(visitor_event(papercups, account)).encode()
    sent = int(time.time()) + age
    signature, _ = sign(connected.webhook_secret, raw, sent)

    response = post(client, None, raw=raw, signature=signature, timestamp=str(sent) if timestamp is None else timestamp)

    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["details"] == {"reason": "signature_expired"}
        assert stored(connected) == ([], [])


def test_a_signature_of_the_body_alone_no_longer_authenticates(client, connected, papercups, account):
    """The timestamp is inside the signed text: an old signature cannot be re-dated."""
    raw = json.dumps(visitor_event(papercups, account)).encode()
    body_only = hmac.new(connected.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()

    response = post(client, None, raw=raw, signature=body_only)

    assert response.status_code == 403
    assert stored(connected) == ([], [])


# --- Refusals: nothing stored ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("credentials", "status", "code"),
    [
        ({}, 401, "unauthenticated"),
        ({"token": "not-the-secret"}, 403, "forbidden"),
        ({"token": "OTHER"}, 403, "forbidden"),
        ({"signature": "0" * 64}, 403, "forbidden"),
        ({"signature": "SIGNED-BY-OTHER"}, 403, "forbidden"),
        ({"token": "SECRET", "signature": "0" * 64}, 403, "forbidden"),
    ],
)
def test_a_missing_or_wrong_secret_is_refused_and_stores_nothing(
    client, connected, other_tenant, papercups, account, credentials, status, code
):
    raw = json.dumps(visitor_event(papercups, account)).encode()
    token = {"OTHER": other_tenant.webhook_secret, "SECRET": connected.webhook_secret}.get(
        credentials.get("token", ""), credentials.get("token")
    )
    signature = credentials.get("signature")
    if signature == "SIGNED-BY-OTHER":
        signature, _ = sign(other_tenant.webhook_secret, raw)
    refused = WEBHOOK_EVENTS.labels(channel="papercups", event="message:created", outcome=code)._value.get()

    response = post(client, None, raw=raw, token=token, signature=signature)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert stored(connected) == ([], [])
    assert not InboundEvent.objects.exists()
    if status == 403:
        assert WEBHOOK_EVENTS.labels(channel="papercups", event="message:created", outcome=code)._value.get() == (
            refused + 1
        )


def test_an_unknown_account_is_a_generic_404(client, connected, papercups):
    stranger = papercups.add_account()
    event = visitor_event(papercups, stranger)

    response = post(client, event, token=connected.webhook_secret)

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert stored(connected) == ([], [])
    assert not InboundEvent.objects.exists()


def test_a_rotated_secret_stops_the_old_webhook_url_at_once(client, connected, papercups, account):
    old = connected.webhook_secret
    papercups_webhook_secret_rotate(tenant=connected, actor=SYSTEM)

    refused = post(client, visitor_event(papercups, account), token=old)
    accepted = post(client, visitor_event(papercups, account), token=connected.webhook_secret)

    assert (refused.status_code, accepted.status_code) == (403, 200)


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"{not json", 400, {"code": "malformed", "message": "The body is not valid JSON.", "details": {}}),
        (
            b"[1, 2]",
            400,
            {
                "code": "malformed",
                "message": 'Expected a Papercups webhook: {"event": "...", "payload": ...}.',
                "details": {},
            },
        ),
        (
            b'{"payload": {}}',
            400,
            {
                "code": "malformed",
                "message": 'Expected a Papercups webhook: {"event": "...", "payload": ...}.',
                "details": {},
            },
        ),
        (
            b'{"event": "message:created", "payload": "hello"}',
            400,
            {"code": "malformed", "message": "A message:created payload is an object.", "details": {}},
        ),
        (
            b'{"event": "message:created", "payload": {"id": "x"}}',
            400,
            {
                "code": "invalid",
                "message": "payload.account_id must be a UUID.",
                "details": {"field": "payload.account_id"},
            },
        ),
        (
            b'{"event": "webhook:verify", "payload": {"challenge": 1}}',
            400,
            {"code": "malformed", "message": "A webhook:verify payload is the challenge string.", "details": {}},
        ),
    ],
)
def test_malformed_bodies_are_a_clear_400(client, connected, raw, status, error):
    response = post(client, None, raw=raw, token=connected.webhook_secret)

    assert (response.status_code, response.json()) == (status, {"error": error})
    assert stored(connected) == ([], [])
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"id": "not-a-uuid"}, "payload.id", "a UUID"),
        ({"conversation_id": None}, "payload.conversation_id", "a UUID"),
        ({"customer_id": 12}, "payload.customer_id", "a UUID or null"),
        ({"user_id": "7"}, "payload.user_id", "an integer or null"),
        ({"body": ["hi"]}, "payload.body", "a string or null"),
        ({"private": "no"}, "payload.private", "a boolean"),
    ],
)
def test_invalid_message_fields_are_named(client, connected, papercups, account, change, field, expected):
    event = visitor_event(papercups, account)
    event["payload"].update(change)

    response = post(client, event, token=connected.webhook_secret)

    assert (response.status_code, response.json()) == (
        400,
        {"error": {"code": "invalid", "message": f"{field} must be {expected}.", "details": {"field": field}}},
    )
    assert stored(connected) == ([], [])
    assert not InboundEvent.objects.exists()


def test_unknown_events_are_acknowledged_and_ignored(client, connected, papercups):
    body = {"event": "customer:created", "payload": {"account_id": str(connected.papercups_account_id), "id": "x"}}

    response = post(client, body, token=connected.webhook_secret)

    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert stored(connected) == ([], [])
    assert not InboundEvent.objects.exists()


def test_only_post_is_allowed(client, connected):
    response = client.get(f"{URL}?token={connected.webhook_secret}")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_answers_are_the_apis_json_byte_for_byte(client, connected, papercups, account, settings):
    """The ack is served without DRF's machinery: its answers and errors stay exactly what DRF rendered."""
    settings.PAPERCUPS_VERIFY_RATE = "1/m"
    verify = {"event": "webhook:verify", "payload": CHALLENGE}

    accepted = post(client, visitor_event(papercups, account), token=connected.webhook_secret)
    refused = post(client, visitor_event(papercups, account), token="wrong")
    post(client, verify, token="wrong")
    limited = post(client, verify, token="wrong")

    assert (accepted.status_code, accepted.content) == (200, b'{"status":"accepted"}')
    assert (accepted["Content-Type"], accepted["Allow"]) == ("application/json", "POST, OPTIONS")
    assert (refused.status_code, refused["Content-Type"], refused.content) == (
        403,
        "application/json",
        b'{"error":{"code":"forbidden","message":"The webhook token is not valid for this account.","details":{}}}',
    )
    assert [answer["Allow"] for answer in (accepted, refused, limited)] == ["POST, OPTIONS"] * 3
    assert (limited.status_code, limited["Retry-After"]) == (
        429,
        str(limited.json()["error"]["details"]["retry_after"]),
    )
    assert limited.json()["error"]["code"] == "rate_limited"


def test_an_oversized_body_is_a_413(client, connected, settings):
    settings.API_MAX_BODY_BYTES = 1000

    response = post(client, {"event": "message:created", "payload": {"body": "x" * 2000}}, token="t")

    assert response.status_code == 413


# --- The verify handshake -------------------------------------------------------------------------------------------
CHALLENGE = "KZ7Q4M2XWJ5TB3NRC6YHPDLVFA2E7GQS4K9UM3WXZ5RT2BNY6CDH7JQL4PVF3MAE"


def test_verify_echoes_the_challenge_exactly_for_a_tenants_secret(client, connected, other_tenant):
    body = {"event": "webhook:verify", "payload": CHALLENGE}
    raw = json.dumps(body).encode()
    signature, sent = sign(other_tenant.webhook_secret, raw)

    by_token = post(client, body, token=connected.webhook_secret)
    signed_too = post(client, None, raw=raw, token=other_tenant.webhook_secret, signature=signature, timestamp=sent)
    signature_only = post(client, None, raw=raw, signature=signature, timestamp=sent)

    assert signature_only.status_code == 401
    for response in (by_token, signed_too):
        assert (response.status_code, response["Content-Type"]) == (200, "application/json")
        assert response.content == json.dumps({"challenge": CHALLENGE}, separators=(",", ":")).encode()


def test_verify_finds_the_tenant_by_fingerprint_without_decrypting_every_secret(
    client, connected, other_tenant, django_assert_max_num_queries
):
    # Another tenant's secret that cannot be decrypted: reading it would fail the request.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tenants_tenant SET webhook_secret = 'gAAAAA-undecryptable' WHERE id = %s", [other_tenant.pk]
        )
    body = {"event": "webhook:verify", "payload": CHALLENGE}

    with django_assert_max_num_queries(3):
        response = post(client, body, token=connected.webhook_secret)

    assert (response.status_code, response.json()) == (200, {"challenge": CHALLENGE})


def test_verify_with_a_wrong_secret_does_not_echo(client, connected):
    response = post(client, {"event": "webhook:verify", "payload": CHALLENGE}, token="wrong")

    assert response.status_code == 403
    assert CHALLENGE not in response.content.decode()


def test_verify_attempts_are_rate_limited_per_address(client, connected, settings):
    settings.PAPERCUPS_VERIFY_RATE = "2/m"
    body = {"event": "webhook:verify", "payload": CHALLENGE}

    statuses = [post(client, body, token="wrong").status_code for _ in range(3)]

    assert statuses == [403, 403, 429]


# --- Agents, notes, echoes --------------------------------------------------------------------------------------------
def _thread(client, connected, papercups, account) -> dict[str, Any]:
    conversation = papercups.start_conversation(account, "joe@example.com")
    post(client, {"event": "conversation:created", "payload": conversation}, token=connected.webhook_secret)
    return conversation


def test_a_human_agents_public_message_hands_the_conversation_to_the_humans(client, connected, papercups, account):
    agent = papercups.add_agent(account, display_name="Ana")
    conversation = _thread(client, connected, papercups, account)
    payload = papercups.agent_says(account, conversation["id"], "Ana here, I'll take this one.", user_id=agent.id)

    response = post(client, {"event": "message:created", "payload": payload}, token=connected.webhook_secret)

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert stored(connected) == (
        [(conversation["id"], "human", "")],
        [(payload["id"], "agent", "Ana here, I'll take this one.", False)],
    )
    with tenant_context(connected):
        assert Conversation.objects.get().handoff_reason == "agent_replied"


def test_a_private_note_is_recorded_but_is_no_takeover(client, connected, papercups, account):
    agent = papercups.add_agent(account)
    conversation = _thread(client, connected, papercups, account)
    note = papercups.private_note(account, conversation["id"], "VIP customer", user_id=agent.id)

    response = post(client, {"event": "message:created", "payload": note}, token=connected.webhook_secret)

    assert response.json() == {"status": "accepted"}
    assert stored(connected) == ([(conversation["id"], "bot", "")], [(note["id"], "agent", "VIP customer", True)])


@pytest.mark.parametrize("marker", ["bot_user", "netia_metadata"])
def test_the_bots_own_messages_are_ignored(client, connected, papercups, account, marker):
    conversation = _thread(client, connected, papercups, account)
    payload = papercups.agent_says(account, conversation["id"], "Yes, we ship to Canada.", user_id=account.bot.id)
    if marker == "netia_metadata":  # an echo of what we sent, even before the bot user id is known
        Tenant.objects.filter(pk=connected.pk).update(papercups_bot_user_id=None)
        payload["metadata"] = {"netia_message_id": "00000000-0000-0000-0000-000000000001"}

    response = post(client, {"event": "message:created", "payload": payload}, token=connected.webhook_secret)

    assert response.json() == {"status": "ignored"}
    assert stored(connected) == ([(conversation["id"], "bot", "")], [])


@pytest.mark.parametrize("change", [{"body": ""}, {"body": None}, {"body": "   "}, {"customer_id": None}])
def test_empty_or_authorless_messages_are_ignored(client, connected, papercups, account, change):
    event = visitor_event(papercups, account)
    event["payload"].update(change)

    response = post(client, event, token=connected.webhook_secret)

    assert response.json() == {"status": "ignored"}
    assert stored(connected) == ([], [])
    assert not InboundEvent.objects.exists()


# --- Conversations kept in step -------------------------------------------------------------------------------------
def test_conversation_events_are_read_back_so_status_and_assignee_follow_papercups(
    client, connected, papercups, account, django_capture_on_commit_callbacks
):
    """A `conversation:updated` payload carries no version and events come in any order: each event makes Netia
    read the conversation back, so the same stale payload every time still tracks Papercups."""
    agent = papercups.add_agent(account)
    conversation = papercups.start_conversation(account, "joe@example.com")
    stale = {"event": "conversation:updated", "payload": conversation}

    def change(**changes: Any) -> list[tuple[str, str, str]]:
        papercups.agent_updates(account, conversation["id"], **changes)
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, stale, token=connected.webhook_secret).json() == {"status": "accepted"}
        return stored(connected)[0]

    created = post(client, {"event": "conversation:created", "payload": conversation}, token=connected.webhook_secret)
    assert (created.json(), stored(connected)[0]) == ({"status": "accepted"}, [(conversation["id"], "bot", "")])
    bot, human = str(account.bot.id), str(agent.id)
    assert change(assignee_id=account.bot.id) == [(conversation["id"], "bot", bot)]
    assert change(status="closed") == [(conversation["id"], "closed", bot)]
    assert change(status="open") == [(conversation["id"], "bot", bot)]
    assert change(assignee_id=agent.id) == [(conversation["id"], "human", human)]
    assert change(assignee_id=None) == [(conversation["id"], "human", "")]  # unassigning never re-enables the bot
    with tenant_context(connected):
        assert Conversation.objects.get().handoff_reason == "assigned_to_agent"
    reads = papercups.requests_to("GET", f"/api/v1/conversations/{conversation['id']}")
    assert len(reads) == 5


def test_an_older_reading_of_a_conversation_never_overwrites_a_newer_one(connected):
    now = timezone.now()
    closed = ConversationState(external_id="c-1", customer_external_id="", closed=True)
    open_ = ConversationState(external_id="c-1", customer_external_id="", closed=False)
    with tenant_context(connected):
        applied = channel_conversation_sync(channel="papercups", state=closed, observed_at=now)
        late = channel_conversation_sync(channel="papercups", state=open_, observed_at=now - timedelta(seconds=1))
        closed_status = Conversation.objects.get().status
        conversation = Conversation.objects.get()
        message_record_visitor(conversation=conversation, content="Hello again?", external_id="m-2")  # reopens
        stale_close = channel_conversation_sync(channel="papercups", state=closed, observed_at=now)

        assert (applied, late, closed_status) == ("accepted", "ignored", "closed")
        assert (stale_close, Conversation.objects.get().status) == ("ignored", "bot")


def test_a_conversation_with_an_unknown_status_is_refused(client, connected, papercups, account):
    conversation = {**papercups.start_conversation(account, "joe@example.com"), "status": "snoozed"}

    response = post(client, {"event": "conversation:updated", "payload": conversation}, token=connected.webhook_secret)

    assert (response.status_code, response.json()["error"]["details"]) == (400, {"field": "payload.status"})
    assert stored(connected) == ([], [])
    assert not InboundEvent.objects.exists()


def test_the_webhook_secret_in_the_url_never_reaches_the_logs(client, connected, caplog):
    with caplog.at_level("INFO"):
        response = post(client, None, raw=b"{not json", token=connected.webhook_secret)

    assert response.status_code == 400
    assert "POST /papercups/webhook?token=[redacted]" in caplog.text
    assert connected.webhook_secret not in caplog.text


def test_an_assignee_is_a_human_only_when_it_is_not_the_bot_user(papercups, account):
    conversation = papercups.start_conversation(account, "joe@example.com")
    to_bot = {**conversation, "assignee_id": account.bot.id}
    to_agent = {**conversation, "assignee_id": account.bot.id + 100}

    assert papercups_module.conversation_parse(to_bot, bot_user_id=account.bot.id).assigned_to_human is False
    assert papercups_module.conversation_parse(to_agent, bot_user_id=account.bot.id).assigned_to_human is True
    # Before the connection check learnt the bot's user id, the bot's own auto-assignment must not silence it.
    assert papercups_module.conversation_parse(to_bot, bot_user_id=None).assigned_to_human is False
