"""The Crisp fake, driven by Crisp's official Python client (`crisp-api`) and plain HTTP (no Django).

Runnable alone: `.venv/bin/python -m pytest -p no:django --noconftest tests/fakes/test_crisp_fake.py -q`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from crisp_api import Crisp
from crisp_api.errors.route import RouteError

from .base import FakeServer, RecordedRequest, Reply
from .crisp_server import FakeCrisp, Website, sign_hook

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with _opener.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def basic(identifier: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{identifier}:{key}".encode()).decode()


class Receiver(FakeServer):
    """The plugin's hook endpoint: answers each POST with the next status of `statuses` (then 200)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []
        self.route("POST", "/hook", self._receive)

    def _receive(self, request: RecordedRequest) -> Reply:
        return Reply(self.statuses.pop(0) if self.statuses else 200, {"ok": True})

    def events(self) -> list[str]:
        return [r.json()["event"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def crisp(receiver: Receiver) -> Iterator[FakeCrisp]:
    with FakeCrisp() as fake:
        fake.hook_url = f"{receiver.url}/hook"
        yield fake


@pytest.fixture
def client(crisp: FakeCrisp, monkeypatch: pytest.MonkeyPatch) -> Crisp:
    """The official client on the fake; `set_tier` writes class-level headers, so they are restored after."""
    monkeypatch.setattr(Crisp, "REQUEST_HEADERS", dict(Crisp.REQUEST_HEADERS))
    official = Crisp()
    official.set_rest_host(crisp.url)
    official.authenticate(crisp.identifier, crisp.key)
    official.set_tier("plugin")
    return official


@pytest.fixture
def website(crisp: FakeCrisp) -> Website:
    site = crisp.add_website("Acme")
    crisp.add_operator(site, "Ana Operator")
    return site


def test_the_plugin_token_and_the_plugin_tier_are_required(crisp: FakeCrisp, client: Crisp) -> None:
    url = f"{crisp.api_url}/plugin/connect/account"
    right = basic(crisp.identifier, crisp.key)

    assert client.plugin.get_connect_account() == {"plugin_id": crisp.plugin_id}
    unauthorized = (401, {"error": True, "reason": "unauthorized", "data": {"message": "Authentication failed"}})
    assert http("GET", url) == unauthorized
    assert http("GET", url, headers={"Authorization": right}) == unauthorized  # no tier header
    assert http("GET", url, headers={"Authorization": right, "X-Crisp-Tier": "website"}) == unauthorized
    assert http("GET", url, headers={"Authorization": basic(crisp.identifier, "nope"), "X-Crisp-Tier": "plugin"}) == (
        unauthorized
    )
    (seen, *_) = crisp.requests
    assert seen.headers["x-crisp-tier"] == "plugin"
    assert seen.headers["authorization"] == right


def test_errors_come_in_the_envelope_and_uninstalled_websites_are_forbidden(
    crisp: FakeCrisp, client: Crisp, website: Website
) -> None:
    other = crisp.add_website("Not installed", installed=False)
    headers = {"Authorization": basic(crisp.identifier, crisp.key), "X-Crisp-Tier": "plugin"}

    missing = http("GET", f"{crisp.api_url}/website/{website.website_id}/conversation/session_x", headers=headers)
    forbidden = http("GET", f"{crisp.api_url}/website/{other.website_id}/operators/list", headers=headers)
    with pytest.raises(RouteError) as raised:
        client.website.get_conversation(website.website_id, "session_x")

    assert missing == (404, {"error": True, "reason": "session_not_found", "data": {}})
    assert forbidden[0] == 403
    assert forbidden[1]["error"] is True
    assert raised.value.args[0]["code"] == 404


def test_a_plugin_message_gets_a_fingerprint_and_is_echoed_as_message_received(
    crisp: FakeCrisp, client: Crisp, website: Website, receiver: Receiver
) -> None:
    session = crisp.start_session(website)
    user = {"type": "participant", "nickname": "Acme Bot", "avatar": "https://acme.test/bot.png"}
    body = {"type": "text", "from": "operator", "origin": "chat", "content": "Hi!", "user": user}

    sent = client.website.send_message_in_conversation(website.website_id, session, body)
    chosen = client.website.send_message_in_conversation(website.website_id, session, {**body, "fingerprint": 42})
    crisp.honour_fingerprints = False
    ignored = client.website.send_message_in_conversation(website.website_id, session, {**body, "fingerprint": 43})

    assert isinstance(sent["fingerprint"], int)
    assert chosen == {"fingerprint": 42}
    assert ignored["fingerprint"] != 43
    first = crisp.messages(session)[0]
    assert (first["type"], first["from"], first["origin"], first["content"], first["user"]) == (
        "text",
        "operator",
        "chat",
        "Hi!",
        user,
    )
    echo = crisp.hooks("message:received")[0].payload
    assert echo["data"]["fingerprint"] == sent["fingerprint"]
    assert receiver.events() == ["message:received"] * 3
    assert client.website.get_message_in_conversation(website.website_id, session, 42)["content"] == "Hi!"


def test_bad_messages_are_refused_and_nothing_is_stored(crisp: FakeCrisp, client: Crisp, website: Website) -> None:
    session = crisp.start_session(website)
    good = {"type": "text", "from": "operator", "origin": "chat", "content": "Hi"}

    for bad in ({**good, "type": "sms"}, {**good, "from": "bot"}, {**good, "origin": "web"}, {**good, "content": ""}):
        with pytest.raises(RouteError) as raised:
            client.website.send_message_in_conversation(website.website_id, session, bad)
        assert raised.value.args[0]["code"] == 400

    assert crisp.messages(session) == []


def test_hooks_are_signed_and_retried_with_the_attempt_headers(
    crisp: FakeCrisp, website: Website, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    session = crisp.start_session(website, nickname="Joe")

    message = crisp.visitor_says(website, session, "Do you ship to Canada?")

    (delivery,) = crisp.hooks()
    assert [a.status for a in delivery.attempts] == [500, 503, 200]
    assert len(receiver.requests) == 3
    for count, request in enumerate(receiver.requests, start=1):
        timestamp = request.headers["x-crisp-request-timestamp"]
        signed = b"[" + timestamp.encode() + b";" + request.body + b"]"
        expected = hmac.new(crisp.signing_secret.encode(), signed, hashlib.sha256).hexdigest()
        assert request.headers["x-crisp-signature"] == expected
        assert (request.headers["x-delivery-attempt-count"], request.headers["x-delivery-attempt-limit"]) == (
            str(count),
            "3",
        )
        assert request.headers["x-crisp-hook-origin"].startswith("plugin/rtm ")
        assert request.body == delivery.body
    assert b" " not in delivery.body.replace(b"Do you ship to Canada?", b"")  # compact JSON
    body = json.loads(delivery.body)
    assert (body["website_id"], body["event"], isinstance(body["timestamp"], int)) == (
        website.website_id,
        "message:send",
        True,
    )
    data = body["data"]
    assert data == message
    assert (data["from"], data["origin"], data["type"], data["stamped"], data["user"]) == (
        "user",
        "chat",
        "text",
        True,
        {"nickname": "Joe", "user_id": session},
    )
    assert isinstance(data["fingerprint"], int)
    assert data["timestamp"] > 1_500_000_000_000  # milliseconds


def test_a_hook_refused_every_time_stops_at_the_attempt_limit_and_a_dropped_one_is_never_sent(
    crisp: FakeCrisp, website: Website, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 10
    session = crisp.start_session(website)
    crisp.visitor_says(website, session, "one")
    receiver.statuses = []
    crisp.drop_next_hook(event="message:send")
    crisp.visitor_says(website, session, "two")

    failed, dropped = crisp.hook_log
    again = crisp.redeliver(dropped)

    assert ([a.status for a in failed.attempts], failed.delivered) == ([500, 500, 500], False)
    assert (dropped.dropped, dropped.attempts) == (True, [])
    assert (again.delivered, again.body) == (True, dropped.body)
    assert len(receiver.requests) == 4
    assert sign_hook("s", "1", b"{}") == hmac.new(b"s", b"[1;{}]", hashlib.sha256).hexdigest()


def test_operators_reply_and_write_notes_as_message_received(crisp: FakeCrisp, website: Website) -> None:
    session = crisp.start_session(website)
    operator = website.operators[0]

    reply = crisp.operator_says(website, session, "Ana here")
    note = crisp.operator_says(website, session, "VIP customer", note=True)

    assert (reply["from"], reply["type"], reply["user"]["user_id"]) == ("operator", "text", operator.user_id)
    assert (note["type"], note["content"]) == ("note", "VIP customer")
    assert [d.event for d in crisp.hooks()] == ["message:received", "message:received"]


def test_routing_state_and_metas_change_through_the_api_with_their_hooks(
    crisp: FakeCrisp, client: Crisp, website: Website
) -> None:
    session = crisp.start_session(website)
    operator = website.operators[0]
    site = website.website_id

    client.website.assign_conversation_routing(site, session, {"assigned": {"user_id": operator.user_id}})
    routed = client.website.get_conversation_routing_assign(site, session)
    client.website.assign_conversation_routing(site, session, {"assigned": None})
    client.website.change_conversation_state(site, session, {"state": "unresolved"})
    client.website.update_conversation_metas(site, session, {"email": "joe@example.com", "phone": "+33612345678"})
    client.website.mark_messages_read_in_conversation(site, session, {"from": "operator", "origin": "chat"})
    client.website.compose_message_in_conversation(site, session, {"type": "start", "from": "operator"})
    for bad_call in (
        lambda: client.website.assign_conversation_routing(site, session, {"assigned": {"user_id": "someone"}}),
        lambda: client.website.change_conversation_state(site, session, "unresolved"),
        lambda: client.website.change_conversation_state(site, session, {"state": "closed"}),
    ):
        with pytest.raises(RouteError):
            bad_call()
    crisp.hooks_for_api_changes = False
    client.website.change_conversation_state(site, session, {"state": "resolved"})

    assert routed == {"assigned": {"user_id": operator.user_id}}
    assert [
        (d.event, {k: v for k, v in d.payload["data"].items() if k not in ("website_id", "inbox_id")})
        for d in crisp.hooks()
    ] == [
        ("session:set_routing", {"session_id": session, "routing_id": operator.user_id, "previous_routing_id": None}),
        ("session:set_routing", {"session_id": session, "routing_id": None, "previous_routing_id": operator.user_id}),
        ("session:set_state", {"session_id": session, "state": "unresolved"}),
        ("session:set_email", {"session_id": session, "email": "joe@example.com"}),
        ("session:set_phone", {"session_id": session, "phone": "+33612345678"}),
    ]
    conversation = crisp.conversation(session)
    assert (conversation["state"], conversation["assigned"], conversation["meta"]["phone"]) == (
        "resolved",
        None,
        "+33612345678",
    )


def test_conversations_and_messages_are_listed_by_page_and_timestamp(
    crisp: FakeCrisp, client: Crisp, website: Website
) -> None:
    crisp.message_page_size = 2
    first, second, empty = (crisp.start_session(website) for _ in range(3))
    said = [crisp.visitor_says(website, first, f"m{i}") for i in range(3)]
    crisp.visitor_says(website, second, "hello")
    crisp.operator_sets_state(website, second, "resolved")
    site = website.website_id

    listed = client.website.list_conversations(site, 1)
    not_resolved = client.website.search_conversations(site, 1, filter_not_resolved="1")  # ".../1/?..."
    page_two = client.website.search_conversations(site, 2, filter_not_resolved="1")
    last_page = client.website.get_messages_in_conversation(site, first, {})
    before = client.website.get_messages_in_conversation(site, first, {"timestamp_before": said[1]["timestamp"]})
    after = client.website.get_messages_in_conversation(site, first, {"timestamp_after": said[0]["timestamp"]})

    assert [c["session_id"] for c in listed] == [second, first]  # most recently updated first, no empty one
    assert empty not in [c["session_id"] for c in listed]
    assert ([c["session_id"] for c in not_resolved], page_two) == ([first], [])
    assert (listed[0]["state"], listed[1]["preview_message"]["excerpt"]) == ("resolved", "m2")
    assert [m["content"] for m in last_page] == ["m1", "m2"]
    assert [m["content"] for m in before] == ["m0"]
    assert [m["content"] for m in after] == ["m1", "m2"]
    (request,) = [r for r in crisp.requests if r.path.endswith("/conversations/1/")]
    assert request.query == {"filter_not_resolved": ["1"]}


def test_installed_websites_are_listed_by_page_and_installs_are_hooked(
    crisp: FakeCrisp, client: Crisp, receiver: Receiver
) -> None:
    crisp.website_page_size = 2
    sites = [crisp.add_website(f"Site {i}") for i in range(3)]
    crisp.uninstall(sites[1])

    pages = [client.plugin.list_all_connect_websites(page, 0) for page in (1, 2)]

    assert [[row["website_id"] for row in page] for page in pages] == [
        [sites[0].website_id, sites[2].website_id],
        [],
    ]
    assert set(pages[0][0]) == {"website_id", "token", "settings"}
    (hook,) = crisp.hooks("plugin:subscription:updated")
    assert hook.payload["data"] == {
        "website_id": sites[1].website_id,
        "plugin_id": crisp.plugin_id,
        "bound": False,
        "target": "website",
    }
    assert receiver.events() == ["plugin:subscription:updated"]


@pytest.mark.parametrize("status", [429, 420])
def test_the_daily_quota_answers_429_or_420_until_reset(crisp: FakeCrisp, client: Crisp, status: int) -> None:
    crisp.daily_quota, crisp.quota_status, crisp.quota_retry_after = 2, status, 3600
    client.plugin.get_connect_account()
    client.plugin.get_connect_account()
    headers = {"Authorization": basic(crisp.identifier, crisp.key), "X-Crisp-Tier": "plugin"}

    refused = http("GET", f"{crisp.api_url}/plugin/connect/account", headers=headers)
    crisp.reset_quota()

    assert refused == (
        status,
        {"error": True, "reason": "quota_limit_exceeded", "data": {"message": "Plugin quota exceeded"}},
    )
    assert client.plugin.get_connect_account() == {"plugin_id": crisp.plugin_id}
