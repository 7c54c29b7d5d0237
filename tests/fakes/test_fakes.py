"""Tests of the fakes themselves, through real clients: the `openai` package and plain HTTP (urllib).

Runnable without Django:
`.venv/bin/python -m pytest -p no:django -p no:cacheprovider --noconftest tests/fakes/test_fakes.py -q`.

Over ~400 lines on purpose: the contract tests of two fakes, one section per protocol feature.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import openai
import pytest

from .base import FakeServer, RecordedRequest, Reply
from .openai_server import FakeOpenAI
from .papercups_server import Account, FakePapercups

NOW = datetime(2022, 3, 14, 15, 9, 26, tzinfo=UTC)
CREATED_AT = "2022-03-14T15:09:26"
NOW_Z = "2022-03-14T15:09:26Z"
UNKNOWN_ID = "3f6a9b12-8c4d-4e7f-a1b2-c3d4e5f60718"
SYSTEM_PROMPT = "\n".join(
    [
        "You are Netia.",
        "Use only these passages:",
        "[1] We ship to Canada in 3-5 business days.",
        "[2] Returns are free.",
    ]
)
SHIPPING_ANSWER = 'According to [1], "We ship to Canada in 3-5 business days."'
HELLO = [{"role": "user", "content": "Hello"}]
NOT_AUTHENTICATED = {"error": {"code": 401, "message": "Not authenticated"}}
PHOENIX_NOT_FOUND = {"errors": {"detail": "Not Found"}}
BAD_REQUEST = {"errors": {"detail": "Bad Request"}}
INTERNAL_SERVER_ERROR = {"errors": {"detail": "Internal Server Error"}}

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response(NamedTuple):
    """What `http()` got back."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def outcome(self) -> tuple[int, Any]:
        """(status, body), for one-line exact assertions."""
        return self.status, self.body


def http(
    method: str,
    url: str,
    *,
    key: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    """Send one JSON request (with a Bearer key if given); decode the JSON answer."""
    all_headers = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw, response_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, response_headers = error.code, error.read(), error.headers
    lowered = {name.lower(): value for name, value in response_headers.items()}
    return Response(status, lowered, json.loads(raw) if raw else None)


class Receiver(FakeServer):
    """A webhook endpoint: answers the verify challenge as `mode` says and records every event."""

    def __init__(self, mode: str = "raw") -> None:
        super().__init__()
        self.mode = mode
        self.route("POST", "/", self._receive)

    def _receive(self, request: RecordedRequest) -> Reply:
        body = request.json()
        if body["event"] != "webhook:verify":
            return Reply(200, {"ok": True})
        challenge = body["payload"].encode()
        text = {"content-type": "text/plain"}
        answers = {
            "raw": Reply(200, raw=challenge, headers=text),
            "json_object": Reply(200, {"challenge": body["payload"]}),
            "json_string": Reply(200, body["payload"]),
            "raw_with_newline": Reply(200, raw=challenge + b"\n", headers=text),
            "json_object_as_text": Reply(200, raw=b'{"challenge":"' + challenge + b'"}', headers=text),
            "raw_as_json": Reply(200, raw=challenge),
            "raw_with_status_500": Reply(500, raw=challenge, headers=text),
            "wrong": Reply(200, {"challenge": "nope"}),
        }
        return answers[self.mode]

    @property
    def hook_url(self) -> str:
        """The URL to register (it has a path, as Papercups requires)."""
        return f"{self.url}/hooks/papercups"

    def events(self) -> list[dict[str, Any]]:
        """Every non-verify webhook body received, oldest first."""
        bodies = [r.json() for r in self.requests_to("POST", "/")]
        return [b for b in bodies if b["event"] != "webhook:verify"]


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="test", base_url=f"{fake_openai.url}/v1", max_retries=0, timeout=2.0)


@pytest.fixture
def papercups() -> Iterator[FakePapercups]:
    with FakePapercups(clock=lambda: NOW) as fake:
        yield fake


@pytest.fixture
def account(papercups: FakePapercups) -> Account:
    return papercups.add_account("2ebbad4c-1f0a-4c8e-9d3b-eaf9ebf469a5", bot_email="bot@shop.example.com")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def ask(client: openai.OpenAI, messages: list[dict[str, Any]]) -> Any:
    """One chat completion with the real client."""
    return client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]


def answer(client: openai.OpenAI, messages: list[dict[str, Any]]) -> str | None:
    """The text of one chat completion."""
    content: str | None = ask(client, messages).choices[0].message.content
    return content


def conversation_of(conversation: dict[str, Any]) -> dict[str, str]:
    """The minimal message params: just the conversation id."""
    return {"conversation_id": conversation["id"]}


def unprocessable(errors: dict[str, list[str]]) -> dict[str, Any]:
    """Papercups' changeset error body."""
    return {"error": {"status": 422, "message": "Unprocessable Entity", "errors": errors}}


# -- FakeOpenAI --------------------------------------------------------------------------------
def test_default_answer_quotes_the_first_passage_and_the_prompt_is_recorded(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Do you ship to Canada?"},
    ]

    completion = ask(client, messages)

    assert completion.id == "chatcmpl-fake1"
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == SHIPPING_ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 25
    assert completion.usage.completion_tokens == 11
    assert completion.usage.total_tokens == 36
    assert fake_openai.last_messages() == messages
    assert fake_openai.prompts() == [messages]
    assert fake_openai.last_request()["model"] == "gpt-4o-mini"
    assert fake_openai.completion_requests()[0].headers["authorization"] == "Bearer test"


def test_without_a_passage_the_default_answer_is_i_dont_know(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}]

    assert answer(client, messages) == "I don't know."


def test_reply_can_be_fixed_text_or_a_callable_and_content_parts_are_flattened(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake_openai.set_reply("We open at 9.")
    assert answer(client, [{"role": "user", "content": "When?"}]) == "We open at 9."

    fake_openai.set_reply(lambda messages: messages[-1]["content"].upper())
    parts = [{"type": "text", "text": "shout "}, {"type": "text", "text": "this"}]

    assert answer(client, [{"role": "user", "content": parts}]) == "SHOUT THIS"
    assert fake_openai.last_messages() == [{"role": "user", "content": "shout this"}]
    assert len(fake_openai.prompts()) == 2


def test_429_raises_rate_limit_error_once_then_succeeds(
    fake_openai: FakeOpenAI,
    client: openai.OpenAI,
) -> None:
    fake_openai.fail_with(429)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "Canada?"}]

    with pytest.raises(openai.RateLimitError) as raised:
        ask(client, messages)

    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "1"
    assert raised.value.body == {
        "message": "Rate limit reached for requests. Please try again later.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert answer(client, messages) == SHIPPING_ANSWER
    assert len(fake_openai.prompts()) == 2


def test_server_errors_are_raised_for_the_requested_number_of_times(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake_openai.fail_with(500, times=2)
    fake_openai.fail_with(503, message="Overloaded.")

    statuses = []
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as raised:
            ask(client, HELLO)
        statuses.append(raised.value.status_code)

    assert statuses == [500, 500, 503]
    assert raised.value.body == {
        "message": "Overloaded.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert answer(client, HELLO) == "I don't know."


def test_delay_makes_the_client_time_out_once(fake_openai: FakeOpenAI) -> None:
    impatient = openai.OpenAI(api_key="test", base_url=f"{fake_openai.url}/v1", max_retries=0, timeout=0.2)
    fake_openai.delay(1.0)

    with pytest.raises(openai.APITimeoutError):
        ask(impatient, HELLO)

    assert answer(impatient, HELLO) == "I don't know."


def test_models_and_reset(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["gpt-4o-mini"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")

    fake_openai.set_reply("fixed")
    fake_openai.fail_with(500)
    fake_openai.reset()

    assert fake_openai.requests == []
    assert answer(client, HELLO) == "I don't know."


def test_embeddings_are_deterministic_in_both_encodings_and_similar_for_shared_words(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    # The client asks for base64 by default and decodes it; "float" is the other encoding.
    first = client.embeddings.create(model="text-embedding-3-small", input=["Flat tire repair", "Opening hours"])
    again = client.embeddings.create(model="text-embedding-3-small", input="flat TIRE repair!", encoding_format="float")
    short = client.embeddings.create(model="text-embedding-3-small", input="hours", dimensions=8)

    flat, hours = (item.embedding for item in first.data)
    assert [item.index for item in first.data] == [0, 1]
    assert (first.model, first.usage.prompt_tokens, len(flat)) == ("text-embedding-3-small", 5, 64)
    assert again.data[0].embedding == pytest.approx(flat, abs=1e-6)
    assert sum(a * b for a, b in zip(flat, flat, strict=True)) == pytest.approx(1.0)
    assert abs(sum(a * b for a, b in zip(flat, hours, strict=True))) < 0.5
    assert len(short.data[0].embedding) == 8
    assert fake_openai.embedding_inputs() == [["Flat tire repair", "Opening hours"], ["flat TIRE repair!"], ["hours"]]
    assert fake_openai.requests_to("POST", "/v1/embeddings")[0].json()["encoding_format"] == "base64"


def test_embedding_errors_and_custom_embeddings(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.fail_embeddings_with(429)
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="m", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="m", input=[])
    fake_openai.set_embedding(lambda text, dims: [float(len(text))] + [0.0] * (dims - 1))

    assert client.embeddings.create(model="m", input="abc", encoding_format="float").data[0].embedding[:2] == [3.0, 0.0]


def test_missing_api_key_is_a_401_in_openai_shape(fake_openai: FakeOpenAI) -> None:
    response = http("POST", f"{fake_openai.url}/v1/chat/completions", body={"model": "m", "messages": HELLO})

    assert response.status == 401
    assert response.body == {
        "error": {
            "message": "You didn't provide an API key.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


# -- FakePapercups: webhook verification -------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "verified"),
    [
        ("raw", True),
        ("json_object", True),
        ("json_string", True),
        ("raw_with_status_500", True),
        ("raw_with_newline", False),
        ("json_object_as_text", False),
        ("raw_as_json", False),
        ("wrong", False),
    ],
)
def test_verify_handshake(papercups: FakePapercups, account: Account, mode: str, verified: bool) -> None:
    with Receiver(mode) as endpoint:
        assert papercups.register_webhook(account, endpoint.hook_url) is verified

        (request,) = endpoint.requests
    body = request.json()
    assert request.path == "/hooks/papercups"
    assert request.headers["content-type"] == "application/json"
    assert list(body) == ["event", "payload"]
    assert body["event"] == "webhook:verify"
    assert len(body["payload"]) == 64
    assert set(body["payload"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert [s.verified for s in account.subscriptions] == [verified]


def test_url_without_path_fails_without_any_request(
    papercups: FakePapercups, account: Account, receiver: Receiver
) -> None:
    assert papercups.register_webhook(account, receiver.url) is False
    assert receiver.requests == []
    assert papercups.register_webhook(account, f"{receiver.url}/") is True


def test_unreachable_url_is_not_verified(papercups: FakePapercups, account: Account) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    assert papercups.register_webhook(account, f"http://127.0.0.1:{port}/hook") is False
    assert papercups.webhook_log[-1].status is None
    assert papercups.webhook_log[-1].error is not None


# -- FakePapercups: REST -----------------------------------------------------------------------
def test_authentication_me_and_unknown_routes(papercups: FakePapercups, account: Account) -> None:
    me = f"{papercups.url}/api/v1/me"
    wrong_headers = [{}, {"authorization": f"bearer {account.api_key}"}, {"authorization": account.api_key}]

    response = http("GET", me, key=account.api_key)

    assert (response.status, response.headers["content-type"]) == (200, "application/json; charset=utf-8")
    assert response.body == {
        "data": {
            "id": account.bot.id,
            "email": "bot@shop.example.com",
            "account_id": account.id,
            "role": "user",
        }
    }
    for headers in wrong_headers:
        assert http("GET", me, headers=headers).outcome == (401, NOT_AUTHENTICATED)
    assert http("GET", me, key="SFMyNTY.unknown").outcome == (401, NOT_AUTHENTICATED)
    unknown_route = f"{papercups.url}/api/v1/nothing"
    assert http("GET", unknown_route, key=account.api_key).outcome == (404, PHOENIX_NOT_FOUND)
    assert account.api_key.startswith("SFMyNTY.g2gD")


def test_users_lists_the_bot_and_agents(papercups: FakePapercups, account: Account) -> None:
    agent = papercups.add_agent(account, email="ana@shop.example.com", display_name="Ana")

    response = http("GET", f"{papercups.url}/api/v1/users", key=account.api_key)

    assert response.status == 200
    assert response.body == {
        "data": [
            {
                "id": account.bot.id,
                "object": "user",
                "email": "bot@shop.example.com",
                "created_at": CREATED_AT,
                "disabled_at": None,
                "archived_at": None,
                "full_name": None,
                "display_name": "Netia Bot",
                "profile_photo_url": None,
                "role": "user",
            },
            {
                "id": agent.id,
                "object": "user",
                "email": "ana@shop.example.com",
                "created_at": CREATED_AT,
                "disabled_at": None,
                "archived_at": None,
                "full_name": None,
                "display_name": "Ana",
                "profile_photo_url": None,
                "role": "user",
            },
        ]
    }


def test_visitor_and_bot_round_trip_with_webhooks(
    papercups: FakePapercups, account: Account, receiver: Receiver
) -> None:
    assert papercups.register_webhook(account, receiver.hook_url) is True
    fields = {"host": "shop.example.com", "pathname": "/faq"}

    conversation = papercups.start_conversation(account, "joe@example.com", customer_fields=fields)
    visitor = papercups.visitor_says(account, conversation["id"], "Hi, do you ship to Canada?")
    response = http(
        "POST",
        f"{papercups.url}/api/v1/messages",
        key=account.api_key,
        body={
            "message": {
                "conversation_id": conversation["id"],
                "body": "Yes! We ship to Canada in 3-5 business days.",
                "type": "bot",
                "source": "api",
                "user_id": 999,
                "account_id": "00000000-0000-4000-8000-000000000000",
                "sent_at": "2022-03-14T15:09:27.123Z",
                "metadata": {"bot": "netia"},
            }
        },
    )

    customer_id = conversation["customer_id"]
    assert conversation == {
        "id": conversation["id"],
        "object": "conversation",
        "source": "chat",
        "created_at": CREATED_AT,
        "closed_at": None,
        "last_activity_at": None,
        "status": "open",
        "read": False,
        "priority": "not_priority",
        "subject": None,
        "account_id": account.id,
        "customer_id": customer_id,
        "assignee_id": None,
        "inbox_id": account.inbox_id,
        "metadata": None,
    }
    assert list(visitor) == [
        "id", "object", "body", "type", "content_type", "private", "source", "created_at", "sent_at",
        "seen_at", "conversation_id", "account_id", "user_id", "user", "customer_id", "customer",
        "attachments", "metadata",
    ]  # fmt: skip
    assert visitor == {
        "id": visitor["id"],
        "object": "message",
        "body": "Hi, do you ship to Canada?",
        "type": "reply",
        "content_type": "text",
        "private": False,
        "source": "chat",
        "created_at": CREATED_AT,
        "sent_at": NOW_Z,
        "seen_at": None,
        "conversation_id": conversation["id"],
        "account_id": account.id,
        "user_id": None,
        "user": None,
        "customer_id": customer_id,
        "customer": {
            "id": customer_id,
            "object": "customer",
            "name": None,
            "email": "joe@example.com",
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "phone": None,
            "external_id": None,
            "profile_photo_url": None,
            "company_id": None,
            "host": "shop.example.com",
            "pathname": "/faq",
            "current_url": None,
            "browser": None,
            "os": None,
            "metadata": None,
            "title": "joe@example.com",
        },
        "attachments": [],
        "metadata": None,
    }
    bot_message = response.body["data"]
    assert (response.status, response.headers["location"]) == (201, f"/api/messages/{bot_message['id']}")
    assert bot_message == {
        "id": bot_message["id"],
        "object": "message",
        "body": "Yes! We ship to Canada in 3-5 business days.",
        "type": "bot",
        "content_type": "text",
        "private": False,
        "source": "api",
        "created_at": CREATED_AT,
        "sent_at": "2022-03-14T15:09:27Z",
        "seen_at": None,
        "conversation_id": conversation["id"],
        "account_id": account.id,
        "customer_id": None,
        "user_id": account.bot.id,
        "user": account.bot.view(),
        "attachments": [],
        "metadata": {"bot": "netia"},
    }
    assert receiver.events() == [
        {"event": "conversation:created", "payload": conversation},
        {"event": "message:created", "payload": visitor},
        {"event": "message:created", "payload": bot_message},
    ]
    assert {r.headers["content-type"] for r in receiver.requests} == {"application/json"}
    expanded = http("GET", f"{papercups.url}/api/v1/conversations/{conversation['id']}", key=account.api_key)
    assert expanded.body["data"]["assignee_id"] == account.bot.id
    assert expanded.body["data"]["read"] is False
    assert [m["id"] for m in expanded.body["data"]["messages"]] == [visitor["id"], bot_message["id"]]
    assert expanded.body["data"]["customer"]["first_seen"] == "2022-03-14"
    assert (expanded.body["data"]["tags"], expanded.body["data"]["mentions"]) == ([], [])


def test_disable_webhook_events_suppresses_the_echo_but_stores_the_message(
    papercups: FakePapercups, account: Account, receiver: Receiver
) -> None:
    papercups.register_webhook(account, receiver.hook_url)
    conversation = papercups.start_conversation(account)
    quiet = {**conversation_of(conversation), "body": "Hi", "metadata": {"disable_webhook_events": True}}
    url = f"{papercups.url}/api/v1/messages"

    response = http("POST", url, key=account.api_key, body={"message": quiet})

    assert response.status == 201
    assert [e["event"] for e in receiver.events()] == ["conversation:created"]
    assert [m["id"] for m in papercups.messages(conversation["id"])] == [response.body["data"]["id"]]


def test_create_message_errors_match_papercups_and_store_nothing(
    papercups: FakePapercups,
    account: Account,
) -> None:
    conversation = papercups.start_conversation(account)
    foreign_customer = papercups.start_conversation(papercups.add_account())["customer_id"]
    url = f"{papercups.url}/api/v1/messages"
    both_ids = {**conversation_of(conversation), "customer_id": conversation["customer_id"], "user_id": 1}

    def post(message: Any) -> tuple[int, Any]:
        response = http("POST", url, key=account.api_key, body={"message": message})
        return response.status, response.body

    assert post({"body": "x"}) == (422, unprocessable({"conversation_id": ["can't be blank"]}))
    assert post({"conversation_id": conversation["id"], "type": "shout"}) == (
        422,
        unprocessable({"type": ["is invalid"]}),
    )
    assert post({"conversation_id": conversation["id"], "source": "web"}) == (
        422,
        unprocessable({"source": ["is invalid"]}),
    )
    assert post({"conversation_id": UNKNOWN_ID}) == (500, INTERNAL_SERVER_ERROR)
    assert post(both_ids) == (
        422,
        {"error": {"status": 422, "message": "A message should not have both a `user_id` and `customer_id`"}},
    )
    assert post({"conversation_id": conversation["id"], "customer_id": foreign_customer}) == (
        403,
        {"error": {"status": 403, "message": "Forbidden: invalid `customer_id`"}},
    )
    assert http("POST", url, key=account.api_key, body={"msg": {}}).outcome == (400, BAD_REQUEST)
    assert papercups.messages(conversation["id"]) == []


def test_conversation_lookup_is_scoped_to_the_key_account(papercups: FakePapercups, account: Account) -> None:
    conversation = papercups.start_conversation(account)
    other = papercups.add_account()
    url = f"{papercups.url}/api/v1/conversations"
    not_found = {"error": {"status": 404, "message": "Not found"}}

    assert http("GET", f"{url}/{conversation['id']}", key=other.api_key).outcome == (404, not_found)
    assert http("GET", f"{url}/{UNKNOWN_ID}", key=account.api_key).outcome == (404, PHOENIX_NOT_FOUND)
    assert http("GET", f"{url}/not-a-uuid", key=account.api_key).outcome == (400, BAD_REQUEST)


def test_update_conversation_status_and_scoped_conversation_updated(
    papercups: FakePapercups, account: Account, receiver: Receiver
) -> None:
    with Receiver() as scoped:
        papercups.register_webhook(account, receiver.hook_url)
        papercups.register_webhook(account, scoped.hook_url, scope="message:created,conversation:updated")
        conversation = papercups.start_conversation(account)
        url = f"{papercups.url}/api/v1/conversations/{conversation['id']}"
        close = {"conversation": {"status": "closed", "priority": "priority"}}

        closed = http("PUT", url, key=account.api_key, body=close)
        crashed = http("PATCH", url, key=account.api_key, body={"conversation": {"status": "pending"}})
        papercups.visitor_says(account, conversation["id"], "Still there?")

    closed_view = {
        **conversation,
        "status": "closed",
        "priority": "priority",
        "closed_at": NOW_Z,
        "last_activity_at": NOW_Z,
    }
    assert closed.outcome == (200, {"data": closed_view})
    assert crashed.outcome == (500, INTERNAL_SERVER_ERROR)
    assert [e["event"] for e in receiver.events()] == ["conversation:created", "message:created"]
    assert [e["payload"] for e in scoped.events() if e["event"] == "conversation:updated"] == [
        closed_view,
        {**closed_view, "status": "open", "closed_at": None},
    ]
    assert papercups.conversation(conversation["id"])["status"] == "open"


def test_list_messages_filters_newest_first(papercups: FakePapercups, account: Account) -> None:
    agent = papercups.add_agent(account)
    conversation = papercups.start_conversation(account, "joe@example.com")
    visitor = papercups.visitor_says(account, conversation["id"], "Hello there")
    note = papercups.private_note(account, conversation["id"], "VIP customer")
    reply = papercups.agent_says(account, conversation["id"], "Hi Joe")
    url = f"{papercups.url}/api/v1/messages"

    def ids(query: str) -> list[str]:
        return [m["id"] for m in http("GET", f"{url}?{query}", key=account.api_key).body["data"]]

    assert ids(f"conversation_id={conversation['id']}") == [reply["id"], note["id"], visitor["id"]]
    assert ids("private=true") == [note["id"]]
    assert ids(f"user_id={agent.id}&type=reply") == [reply["id"]]
    assert ids(f"customer_id={conversation['customer_id']}") == [visitor["id"]]
    assert ids("body=hello%25") == [visitor["id"]]
    assert http("GET", f"{url}?user_id=abc", key=account.api_key).outcome == (400, BAD_REQUEST)
    assert http("GET", f"{url}?private=true", key=account.api_key).body["data"] == [
        {
            "id": note["id"],
            "object": "message",
            "body": "VIP customer",
            "type": "note",
            "content_type": "text",
            "private": True,
            "source": "chat",
            "created_at": CREATED_AT,
            "sent_at": NOW_Z,
            "seen_at": None,
            "customer_id": None,
            "conversation_id": conversation["id"],
            "account_id": account.id,
            "user_id": agent.id,
            "metadata": None,
        }
    ]
    assert papercups.conversation(conversation["id"])["assignee_id"] == agent.id


def test_dropped_and_unverified_webhooks_are_not_delivered(
    papercups: FakePapercups, account: Account, receiver: Receiver
) -> None:
    with Receiver("wrong") as unverified:
        papercups.register_webhook(account, unverified.hook_url)
        papercups.register_webhook(account, receiver.hook_url)
        conversation = papercups.start_conversation(account)
        papercups.drop_next_webhook(event="message:created")

        lost = papercups.visitor_says(account, conversation["id"], "Anyone?")
        delivered = papercups.visitor_says(account, conversation["id"], "Hello?")

    assert [e["payload"]["id"] for e in receiver.events()] == [conversation["id"], delivered["id"]]
    assert unverified.events() == []
    assert [m["id"] for m in papercups.messages(conversation["id"])] == [lost["id"], delivered["id"]]
    dropped = [(d.event, d.payload["id"]) for d in papercups.webhook_log if d.dropped]
    assert dropped == [("message:created", lost["id"])]


def test_async_delivery_and_webhook_timeout(papercups: FakePapercups, account: Account) -> None:
    with Receiver() as slow:
        papercups.register_webhook(account, slow.hook_url)
        slow.route("POST", "/", lambda _request: Reply(200, {"ok": True}, delay=1.0))
        papercups.webhook_timeout = 0.2
        papercups.sync_webhooks = False

        conversation = papercups.start_conversation(account)
        papercups.wait_for_webhooks()
        hook_url = slow.hook_url

    (delivery,) = papercups.webhooks("conversation:created")
    assert (delivery.url, delivery.payload, delivery.status) == (hook_url, conversation, None)
    assert delivery.error is not None
    assert "timed out" in delivery.error


def test_fail_next_and_slow_next(papercups: FakePapercups, account: Account) -> None:
    conversation = papercups.start_conversation(account)
    messages_url = f"{papercups.url}/api/v1/messages"
    me_url = f"{papercups.url}/api/v1/me"
    message = {"message": {"conversation_id": conversation["id"]}}
    papercups.fail_next("POST", "/api/v1/messages", 503)
    papercups.slow_next("GET", "/api/v1/me", 0.5)

    failed = http("POST", messages_url, key=account.api_key, body=message)
    with pytest.raises(TimeoutError):
        http("GET", me_url, key=account.api_key, timeout=0.1)

    assert failed.outcome == (503, {"errors": {"detail": "Service Unavailable"}})
    assert papercups.messages(conversation["id"]) == []
    assert http("POST", messages_url, key=account.api_key, body=message).status == 201
    assert http("GET", me_url, key=account.api_key, timeout=1.0).status == 200


def test_a_receiver_can_reply_through_the_api_while_a_webhook_is_being_delivered(
    papercups: FakePapercups, account: Account, receiver: Receiver
) -> None:
    papercups.register_webhook(account, receiver.hook_url)
    url = f"{papercups.url}/api/v1/messages"

    def bot(request: RecordedRequest) -> Reply:
        event = request.json()
        payload = event["payload"]
        if event["event"] == "message:created" and payload["customer_id"] and not payload["user_id"]:
            reply = {"conversation_id": payload["conversation_id"], "body": "Hello!", "type": "bot"}
            assert http("POST", url, key=account.api_key, body={"message": reply}).status == 201
        return Reply(200, {"ok": True})

    receiver.route("POST", "/", bot)
    conversation = papercups.start_conversation(account)

    papercups.visitor_says(account, conversation["id"], "Hi")

    assert [(m["body"], m["type"]) for m in papercups.messages(conversation["id"])] == [
        ("Hi", "reply"),
        ("Hello!", "bot"),
    ]
    assert [e["payload"].get("body") for e in receiver.events()] == [None, "Hi", "Hello!"]
