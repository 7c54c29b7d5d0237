"""A Papercups simulator on a real local socket, following PAPERCUPS_NOTES.md beside this file.

It serves the part of ``/api/v1`` a bot uses (Bearer personal API key), including the cursor-paginated
conversation list (``last_activity_at`` DESC, at most 50 a page, messages included), the dashboard API's login
and event subscriptions (a session token without "Bearer"), and sends webhooks as real HTTP POSTs.
Behaviour of the real server (papercups @ 6a6f5adc) reproduced on purpose, quirks included:

- errors come in three shapes: ``{"error": {"code": 401, ...}}`` from the auth plug,
  ``{"error": {"status": ..., "message": ...}}`` from the fallback controller (422, 403, 404 for another
  account's row), and Phoenix's ``{"errors": {"detail": ...}}`` ("Not Found", "Bad Request", "Internal Server
  Error") for missing rows, malformed ids and crashes (a nonexistent ``conversation_id`` on create, a
  conversation ``status`` other than open/closed);
- ``POST /api/v1/messages`` overwrites ``user_id``/``account_id`` with the key owner, does not check that the
  conversation belongs to the key's account, and runs the post-creation hooks (the first agent-side message
  assigns the conversation to its author; ``read``/``status`` updates; ``conversation:updated`` only to
  subscriptions whose scope asks for it);
- timestamps: ``created_at`` naive (``2022-03-14T15:09:28``), every other timestamp UTC with ``Z``.

Webhooks are delivered synchronously by default (before the triggering call returns), so tests are
deterministic; set ``sync_webhooks = False`` to deliver from background threads like Papercups'
``Task.start``, then call ``wait_for_webhooks()``. Time comes from ``clock``, so tests can freeze it.

Over ~400 lines on purpose: a stateful simulator of a whole server (accounts, conversations, messages,
webhook subscriptions, its error shapes and quirks) is one unit; its parts share the state and the lock.
"""

from __future__ import annotations

import base64
import copy
import http
import http.client
import itertools
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .base import DropRules, FakeServer, RecordedRequest, Reply, post

MESSAGE_TYPES = ("reply", "note", "bot")
MESSAGE_SOURCES = ("chat", "slack", "mattermost", "email", "sms", "api", "sandbox")
CONVERSATION_SOURCES = ("chat", "slack", "email", "sms", "api", "sandbox")
CONVERSATION_UPDATED = "conversation:updated"

NOT_AUTHENTICATED = {"error": {"code": 401, "message": "Not authenticated"}}
ACCOUNT_DISABLED = {
    "error": {
        "status": 401,
        "message": "Your account is disabled. Please contact your team admin to enable your account.",
    }
}
NOT_FOUND = {"error": {"status": 404, "message": "Not found"}}
PHOENIX_NOT_FOUND = {"errors": {"detail": "Not Found"}}
BAD_REQUEST = {"errors": {"detail": "Bad Request"}}
INTERNAL_SERVER_ERROR = {"errors": {"detail": "Internal Server Error"}}
BOTH_IDS = "A message should not have both a `user_id` and `customer_id`"
INVALID_CUSTOMER = "Forbidden: invalid `customer_id`"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

Clock = Callable[[], datetime]
Event = tuple[str, str, dict[str, Any]]  # (account_id, event name, payload)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def naive_timestamp(moment: datetime) -> str:
    """How Papercups renders ``inserted_at`` (NaiveDateTime, seconds, no zone)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def utc_timestamp(moment: datetime) -> str:
    """How Papercups renders ``:utc_datetime`` fields (seconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_api_key() -> str:
    """A random string shaped like a Phoenix.Token personal API key (``SFMyNTY.g2gD...``)."""

    def encode(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    term = b"\x83h\x03" + secrets.token_bytes(45)  # an Erlang term header, hence the usual "g2gD" prefix
    return f"SFMyNTY.{encode(term)}.{encode(secrets.token_bytes(32))}"


def challenge_accepted(content_type: str | None, body: bytes, challenge: str) -> bool:
    """Papercups' verify check: the raw body, or (JSON content-type only) a JSON string or {"challenge"}."""
    if content_type is not None and content_type.startswith("application/json") and body:
        try:
            decoded = json.loads(body)
        except ValueError:
            return False
        if isinstance(decoded, dict) and "challenge" in decoded:
            return bool(decoded["challenge"] == challenge)
        return bool(decoded == challenge)
    return body == challenge.encode()


def valid_webhook_url(url: str) -> bool:
    """Papercups accepts a URL only if it has a scheme, a host and a path (``https://x.test`` fails)."""
    parts = urlsplit(url)
    return bool(parts.scheme and parts.netloc and parts.path)


class _HttpError(Exception):
    """Ends a request with this status and body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _ChangesetError(_HttpError):
    """An Ecto changeset error, rendered by the fallback controller as 422."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(422, {"error": {"status": 422, "message": "Unprocessable Entity", "errors": errors}})


class _Crash(_HttpError):
    """An exception Papercups does not handle: Phoenix answers 500."""

    def __init__(self) -> None:
        super().__init__(500, INTERNAL_SERVER_ERROR)


@dataclass
class User:
    """A Papercups user (agent or bot); ids are integers."""

    id: int
    account_id: str
    email: str
    created_at: str
    role: str = "user"
    display_name: str | None = None
    full_name: str | None = None
    profile_photo_url: str | None = None
    disabled_at: str | None = None
    archived_at: str | None = None

    def view(self) -> dict[str, Any]:
        """UserView "user.json" (with profile)."""
        return {
            "id": self.id,
            "object": "user",
            "email": self.email,
            "created_at": self.created_at,
            "disabled_at": self.disabled_at,
            "archived_at": self.archived_at,
            "full_name": self.full_name,
            "display_name": self.display_name,
            "profile_photo_url": self.profile_photo_url,
            "role": self.role,
        }


@dataclass
class Subscription:
    """A webhook (event subscription) of one account."""

    id: str
    account_id: str
    webhook_url: str
    scope: str | None
    verified: bool = False

    def wants(self, event: str) -> bool:
        """Verified subscriptions get every event except ``conversation:updated``, which needs the scope."""
        if not self.verified:
            return False
        if event != CONVERSATION_UPDATED:
            return True
        return self.scope is not None and CONVERSATION_UPDATED in self.scope


@dataclass
class Account:
    """An account with its bot user (owner of ``api_key``), human agents and webhooks."""

    id: str
    company_name: str
    inbox_id: str
    bot: User
    api_key: str
    agents: list[User] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)

    @property
    def users(self) -> list[User]:
        """Every user of the account, bot first."""
        return [self.bot, *self.agents]


@dataclass
class _Call:
    """One authenticated ``/api/v1`` request being handled, and the webhooks it triggers."""

    user: User
    request: RecordedRequest
    segments: list[str]
    events: list[Event] = field(default_factory=list)


@dataclass
class WebhookDelivery:
    """One webhook POST the fake made (or, with ``dropped``, skipped on purpose)."""

    url: str
    event: str
    payload: Any
    status: int | None = None
    content_type: str | None = None
    response_body: bytes = b""
    error: str | None = None
    dropped: bool = False


class FakePapercups(FakeServer):
    """Papercups: accounts, conversations, messages, the bot's REST API and outgoing webhooks."""

    def __init__(self, *, clock: Clock | None = None, webhook_timeout: float = 5.0) -> None:
        super().__init__()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.webhook_timeout = webhook_timeout
        self.sync_webhooks = True
        self.accounts: dict[str, Account] = {}
        self.webhook_log: list[WebhookDelivery] = []
        self._keys: dict[str, User] = {}
        self._customers: dict[str, dict[str, Any]] = {}
        self._conversations: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, dict[str, Any]] = {}
        self._drops = DropRules()
        self._user_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._db = threading.RLock()
        self._passwords: dict[int, str] = {}
        self._sessions: dict[str, User] = {}
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.route(method, "/", lambda _request: _json(404, PHOENIX_NOT_FOUND))
            self.route(method, "/api/v1/", self._api)
        self.route("POST", "/api/session", self._session_create)
        self.route("POST", "/api/event_subscriptions", self._event_subscription_create)

    # -- accounts and users --------------------------------------------------------------------
    def add_account(
        self,
        account_id: str | None = None,
        *,
        company_name: str = "Acme",
        bot_email: str | None = None,
        bot_display_name: str = "Netia Bot",
    ) -> Account:
        """Create an account with a bot user that owns the account's personal API key."""
        with self._db:
            account_id = account_id or str(uuid.uuid4())
            bot_id = next(self._user_ids)
            bot = User(
                id=bot_id,
                account_id=account_id,
                email=bot_email or f"bot{bot_id}@papercups.test",
                created_at=self._naive_now(),
                display_name=bot_display_name,
            )
            account = Account(account_id, company_name, str(uuid.uuid4()), bot, new_api_key())
            self.accounts[account_id] = account
            self._keys[account.api_key] = bot
            return account

    def add_agent(
        self,
        account: Account,
        *,
        email: str | None = None,
        display_name: str | None = None,
        full_name: str | None = None,
        role: str = "user",
    ) -> User:
        """Add a human agent to the account."""
        with self._db:
            user_id = next(self._user_ids)
            user = User(
                id=user_id,
                account_id=account.id,
                email=email or f"agent{user_id}@papercups.test",
                created_at=self._naive_now(),
                role=role,
                display_name=display_name,
                full_name=full_name,
            )
            account.agents.append(user)
            return user

    def issue_api_key(self, user: User) -> str:
        """A further personal API key owned by `user` (e.g. a human agent's)."""
        with self._db:
            key = new_api_key()
            self._keys[key] = user
            return key

    def set_password(self, user: User, password: str) -> None:
        """Let `user` log in to the dashboard API (`POST /api/session`) with this password."""
        with self._db:
            self._passwords[user.id] = password

    def revoke_api_key(self, key: str) -> None:
        """Make `key` unknown (requests with it get 401)."""
        with self._db:
            self._keys.pop(key, None)

    # -- webhooks ------------------------------------------------------------------------------
    def register_webhook(self, account: Account, url: str, scope: str | None = None) -> bool:
        """Add an event subscription and run the verify handshake now; only verified ones receive events."""
        subscription = Subscription(str(uuid.uuid4()), account.id, url, scope)
        with self._db:
            account.subscriptions.append(subscription)
        subscription.verified = self.verify_webhook_url(url)
        return subscription.verified

    def verify_webhook_url(self, url: str) -> bool:
        """The ``webhook:verify`` handshake alone, like ``POST /api/event_subscriptions/verify``."""
        if not valid_webhook_url(url):
            return False
        challenge = base64.b32encode(secrets.token_bytes(64)).decode()[:64]
        delivery = self._post(url, "webhook:verify", challenge)
        if delivery.error is not None:
            return False
        return challenge_accepted(delivery.content_type, delivery.response_body, challenge)

    def drop_next_webhook(self, *, event: str | None = None, times: int = 1) -> None:
        """Skip delivering the next `times` events (of `event`, if given); the data is still stored."""
        with self._db:
            self._drops.add(event, times)

    def webhooks(self, event: str | None = None) -> list[WebhookDelivery]:
        """Deliveries actually attempted (not dropped), oldest first, optionally of one event."""
        with self._db:
            return [d for d in self.webhook_log if not d.dropped and (event is None or d.event == event)]

    def wait_for_webhooks(self, timeout: float = 5.0) -> None:
        """With ``sync_webhooks = False``: wait until every background delivery has finished."""
        self.wait_for_background(timeout)

    # -- failure knobs -------------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int,
        times: int = 1,
        body: Any | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` without handling them (no side effects)."""
        try:
            default = {"errors": {"detail": http.HTTPStatus(status).phrase}}
        except ValueError:
            default = {"errors": {"detail": f"Error {status}"}}
        reply = _json(status, body if body is not None else default)
        self.inject_fault(method, path_prefix, times=times, reply=reply)

    def slow_next(self, method: str, path_prefix: str, seconds: float, times: int = 1) -> None:
        """Handle the next `times` matching requests normally but answer `seconds` late."""
        self.inject_fault(method, path_prefix, times=times, delay=seconds)

    # -- driving a visitor and agents ------------------------------------------------------------
    def start_conversation(
        self,
        account: Account,
        customer_email: str | None = None,
        *,
        customer_name: str | None = None,
        customer_id: str | None = None,
        customer_fields: dict[str, Any] | None = None,
        source: str = "chat",
        subject: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A visitor opens the widget: customer (unless `customer_id`), conversation, conversation:created."""
        with self._db:
            if customer_id is None:
                fields = customer_fields or {}
                customer_id = self._create_customer(account, customer_email, customer_name, fields)
            elif self._customers[customer_id]["account_id"] != account.id:
                raise ValueError(f"customer {customer_id} is not in account {account.id}")
            now = self._naive_now()
            conversation: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "account_id": account.id,
                "customer_id": customer_id,
                "inbox_id": account.inbox_id,
                "source": source,
                "status": "open",
                "priority": "not_priority",
                "read": False,
                "subject": subject,
                "assignee_id": None,
                "metadata": copy.deepcopy(metadata),
                "closed_at": None,
                "last_activity_at": None,
                "first_replied_at": None,
                "archived_at": None,
                "inserted_at": now,
                "updated_at": now,
            }
            self._conversations[conversation["id"]] = conversation
            payload = self._conversation_basic(conversation)
        self._deliver([(account.id, "conversation:created", payload)])
        return copy.deepcopy(payload)

    def visitor_says(
        self, account: Account, conversation_id: str, body: str, *, sent_at: str | None = None
    ) -> dict[str, Any]:
        """The conversation's customer sends a chat message; message:created (with ``customer``)."""
        with self._db:
            conversation = self._own_conversation(account, conversation_id)
            message = self._insert_message(
                {
                    "account_id": account.id,
                    "conversation_id": conversation_id,
                    "customer_id": conversation["customer_id"],
                    "body": body,
                    "sent_at": sent_at or utc_timestamp(self._now()),
                }
            )
            events = self._after_message(message)
            payload = self._message_expanded(message)
        self._deliver(events)
        return copy.deepcopy(payload)

    def agent_says(
        self,
        account: Account,
        conversation_id: str,
        body: str,
        *,
        user_id: int | None = None,
        message_type: str = "reply",
        private: bool = False,
        source: str = "chat",
    ) -> dict[str, Any]:
        """A human agent replies from the dashboard (default: the first agent); message:created."""
        with self._db:
            self._own_conversation(account, conversation_id)
            author = user_id if user_id is not None else self._default_agent(account).id
            message = self._insert_message(
                {
                    "account_id": account.id,
                    "conversation_id": conversation_id,
                    "user_id": author,
                    "body": body,
                    "type": message_type,
                    "private": private,
                    "source": source,
                    "sent_at": utc_timestamp(self._now()),
                }
            )
            events = self._after_message(message)
            payload = self._message_expanded(message)
        self._deliver(events)
        return copy.deepcopy(payload)

    def agent_updates(self, account: Account, conversation_id: str, **changes: Any) -> dict[str, Any]:
        """An agent changes the conversation in the dashboard (assignee, status, priority); conversation:updated
        goes only to subscriptions with that scope."""
        with self._db:
            conversation = self._own_conversation(account, conversation_id)
            self._commit_conversation(conversation, _cast_conversation(conversation, changes))
            payload = self._conversation_basic(conversation)
        self._deliver([(account.id, CONVERSATION_UPDATED, payload)])
        return copy.deepcopy(payload)

    def private_note(
        self, account: Account, conversation_id: str, body: str, *, user_id: int | None = None
    ) -> dict[str, Any]:
        """An agent's internal note (``type: note, private: true``); it reaches webhooks too."""
        return self.agent_says(
            account,
            conversation_id,
            body,
            user_id=user_id,
            message_type="note",
            private=True,
        )

    # -- inspection ----------------------------------------------------------------------------
    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """The conversation as ``GET /api/v1/conversations/:id`` renders it (expanded)."""
        with self._db:
            return self._conversation_expanded(self._conversations[conversation_id])

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages (expanded), oldest first."""
        with self._db:
            rows = sorted(
                (m for m in self._messages.values() if m["conversation_id"] == conversation_id),
                key=lambda m: m["seq"],
            )
            return [self._message_expanded(m) for m in rows]

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The customer as CustomerView "basic.json" renders it."""
        with self._db:
            return self._customer_basic(self._customers[customer_id])

    # -- dashboard session API (`/api`, not `/api/v1`): logging in, webhooks with a scope ------------------
    def _session_create(self, request: RecordedRequest) -> Reply:
        """``SessionController.create``: Pow's email/password login; a session token for ``Authorization``."""
        body = _json_body(request) if request.body else None
        credentials = body.get("user") if isinstance(body, dict) else None
        if not isinstance(credentials, dict):
            return _json(400, BAD_REQUEST)
        with self._db:
            user = next(
                (
                    u
                    for a in self.accounts.values()
                    for u in a.users
                    if u.email == credentials.get("email") and self._passwords.get(u.id) == credentials.get("password")
                ),
                None,
            )
            if user is None:
                return _json(401, {"error": {"status": 401, "message": "Invalid email or password"}})
            token = secrets.token_urlsafe(24)
            self._sessions[token] = user
        data = {"user_id": user.id, "email": user.email, "account_id": user.account_id, "token": token}
        return _json(200, {"data": {**data, "renew_token": secrets.token_urlsafe(24)}})

    def _event_subscription_create(self, request: RecordedRequest) -> Reply:
        """``EventSubscriptionController.create``: the session token alone (no "Bearer"); the row is stored,
        then the verify handshake runs and its result is saved as ``verified``."""
        with self._db:
            user = self._sessions.get(request.headers.get("authorization", ""))
        if user is None:
            return _json(401, NOT_AUTHENTICATED)
        body = _json_body(request)
        params = body.get("event_subscription") if isinstance(body, dict) else None
        if not isinstance(params, dict):
            return _json(400, BAD_REQUEST)
        if not isinstance(params.get("webhook_url"), str) or not params["webhook_url"]:
            return _json(
                422,
                {
                    "error": {
                        "status": 422,
                        "message": "Unprocessable Entity",
                        "errors": {"webhook_url": ["can't be blank"]},
                    }
                },
            )
        scope = params.get("scope") if isinstance(params.get("scope"), str) else None
        subscription = Subscription(str(uuid.uuid4()), user.account_id, params["webhook_url"], scope)
        with self._db:
            self.accounts[user.account_id].subscriptions.append(subscription)
        subscription.verified = self.verify_webhook_url(subscription.webhook_url)
        now = self._naive_now()
        view = {
            "id": subscription.id,
            "object": "event_subscription",
            "created_at": now,
            "updated_at": now,
            "webhook_url": subscription.webhook_url,
            "verified": subscription.verified,
            "account_id": subscription.account_id,
            "scope": subscription.scope,
        }
        reply = _json(201, {"data": view})
        reply.headers["location"] = f"/api/event_subscriptions/{subscription.id}"
        return reply

    # -- REST ----------------------------------------------------------------------------------
    def _api(self, request: RecordedRequest) -> Reply:
        """Every ``/api/v1/*`` request: route, authenticate, handle under the lock, then deliver webhooks."""
        segments = request.path.removeprefix("/api/v1/").strip("/").split("/")
        handler = self._handler_for(request.method, segments)
        if handler is None:
            return _json(404, PHOENIX_NOT_FOUND)
        user = self._authenticate(request)
        if user is None:
            return _json(401, NOT_AUTHENTICATED)
        if user.disabled_at is not None or user.archived_at is not None:
            return _json(401, ACCOUNT_DISABLED)
        call = _Call(user, request, segments)
        try:
            with self._db:
                reply = handler(call)
        except _HttpError as error:
            return _json(error.status, error.body)
        self._deliver(call.events)
        return reply

    def _handler_for(self, method: str, segments: list[str]) -> Callable[[_Call], Reply] | None:
        """The v1 routes this fake implements; anything else is Phoenix's "no route" 404."""
        routes: dict[tuple[str, str, int], Callable[[_Call], Reply]] = {
            ("GET", "me", 1): self._me,
            ("GET", "users", 1): self._list_users,
            ("GET", "messages", 1): self._list_messages,
            ("POST", "messages", 1): self._create_message,
            ("GET", "messages", 2): self._show_message,
            ("GET", "conversations", 1): self._list_conversations,
            ("GET", "conversations", 2): self._show_conversation,
            ("PUT", "conversations", 2): self._update_conversation,
            ("PATCH", "conversations", 2): self._update_conversation,
        }
        return routes.get((method, segments[0], len(segments)))

    def _authenticate(self, request: RecordedRequest) -> User | None:
        """The header must literally start with ``Bearer `` and carry a known key."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        with self._db:
            return self._keys.get(header.removeprefix("Bearer "))

    def _me(self, call: _Call) -> Reply:
        user = call.user
        data = {"id": user.id, "email": user.email, "account_id": user.account_id, "role": user.role}
        return _json(200, {"data": data})

    def _list_users(self, call: _Call) -> Reply:
        account = self.accounts[call.user.account_id]
        return _json(200, {"data": [u.view() for u in account.users if u.disabled_at is None]})

    def _list_messages(self, call: _Call) -> Reply:
        """Messages of the key's account, newest first, filtered like ``Messages.filter_where``."""
        params = {name: values[0] for name, values in call.request.query.items()}
        casts: dict[str, Callable[[Any], Any]] = {
            "customer_id": _cast_uuid,
            "user_id": _cast_integer,
            "conversation_id": _cast_uuid,
            "account_id": _cast_uuid,
            "source": _cast_string,
            "type": _cast_string,
            "private": _cast_boolean,
        }
        filters: dict[str, Any] = {}
        for name, cast in casts.items():
            if name in params:
                try:
                    filters[name] = cast(params[name])
                except ValueError:
                    raise _HttpError(400, BAD_REQUEST) from None
        pattern = _ilike(params["body"]) if "body" in params else None
        rows = [
            m
            for m in self._messages.values()
            if m["account_id"] == call.user.account_id
            and all(m[name] == value for name, value in filters.items())
            and (pattern is None or (m["body"] is not None and pattern.fullmatch(m["body"]) is not None))
        ]
        rows.sort(key=lambda m: m["seq"], reverse=True)
        return _json(200, {"data": [self._message_view(m) for m in rows]})

    def _show_message(self, call: _Call) -> Reply:
        message = self._fetch(self._messages, call.segments[1])
        if message["account_id"] != call.user.account_id:
            return _json(404, NOT_FOUND)
        return _json(200, {"data": self._message_expanded(message)})

    def _create_message(self, call: _Call) -> Reply:
        """``MessageController.create``: sanitize params, cast, insert, notify, run post-creation hooks."""
        params = _message_params(call.request)
        user = call.user
        customer_id = params.get("customer_id")
        if isinstance(customer_id, str) and params.get("user_id") is not None:
            raise _HttpError(422, {"error": {"status": 422, "message": BOTH_IDS}})
        if isinstance(customer_id, str):
            if self._fetch(self._customers, customer_id)["account_id"] != user.account_id:
                raise _HttpError(403, {"error": {"status": 403, "message": INVALID_CUSTOMER}})
            params = {**params, "account_id": user.account_id}
        else:
            params = {**params, "user_id": user.id, "account_id": user.account_id}
        attrs = _cast_message(params)
        if attrs["conversation_id"] not in self._conversations:
            raise _Crash
        message = self._insert_message(attrs)
        call.events.extend(self._after_message(message))
        reply = _json(201, {"data": self._message_expanded(message)})
        reply.headers["location"] = f"/api/messages/{message['id']}"
        return reply

    def _list_conversations(self, call: _Call) -> Reply:
        """``Conversations.list_conversations_by_account_paginated``: the key's account, not archived, most
        recent activity first (``last_activity_at`` DESC, NULLs first as PostgreSQL sorts them, then id DESC),
        expanded (messages included), cursor-paginated with ``limit`` (at most 50) and ``after``."""
        params = {name: values[0] for name, values in call.request.query.items()}
        try:
            limit = min(_cast_integer(params.get("limit", "50")) or 50, CONVERSATION_PAGE_MAX)
        except ValueError:
            limit = CONVERSATION_PAGE_MAX
        rows = [
            c
            for c in self._conversations.values()
            if c["account_id"] == call.user.account_id
            and c["archived_at"] is None
            and all(str(c[name]) == params[name] for name in ("status", "priority", "inbox_id") if name in params)
        ]
        rows.sort(key=_activity_key, reverse=True)
        total = len(rows)
        if params.get("after"):
            cursor = _cursor_decode(params["after"])
            if cursor is None:
                raise _HttpError(400, BAD_REQUEST)
            rows = [c for c in rows if _activity_key(c) < cursor]
        page = rows[:limit]
        more = len(rows) > limit
        body = {
            "data": [self._conversation_expanded(c) for c in page],
            "next": _cursor_encode(page[-1]) if page and more else None,
            "previous": _cursor_encode(page[0]) if page and params.get("after") else None,
            "limit": limit,
            "total": total,
        }
        return _json(200, body)

    def _show_conversation(self, call: _Call) -> Reply:
        conversation = self._authorized_conversation(call)
        return _json(200, {"data": self._conversation_expanded(conversation)})

    def _update_conversation(self, call: _Call) -> Reply:
        """``ConversationController.update``: changeset, then ``conversation:updated`` (even if unchanged)."""
        conversation = self._authorized_conversation(call)
        body = _json_body(call.request)
        if not isinstance(body, dict) or not isinstance(body.get("conversation"), dict):
            raise _HttpError(400, BAD_REQUEST)
        changes = _cast_conversation(conversation, body["conversation"])
        self._commit_conversation(conversation, changes)
        payload = self._conversation_basic(conversation)
        call.events.append((conversation["account_id"], CONVERSATION_UPDATED, payload))
        return _json(200, {"data": payload})

    def _authorized_conversation(self, call: _Call) -> dict[str, Any]:
        """The conversation in the path; another account's is the fallback controller's 404."""
        conversation = self._fetch(self._conversations, call.segments[1])
        if conversation["account_id"] != call.user.account_id:
            raise _HttpError(404, NOT_FOUND)
        return conversation

    # -- storage and side effects ----------------------------------------------------------------
    def _create_customer(
        self,
        account: Account,
        email: str | None,
        name: str | None,
        fields: dict[str, Any],
    ) -> str:
        """Store a widget customer (``POST /api/customers``); `fields` sets any other column."""
        now = self._now()
        customer: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "account_id": account.id,
            "name": name,
            "email": email,
            "phone": None,
            "external_id": None,
            "profile_photo_url": None,
            "company_id": None,
            "host": None,
            "pathname": None,
            "current_url": None,
            "browser": None,
            "os": None,
            "ip": None,
            "time_zone": None,
            "metadata": None,
            "first_seen": now.astimezone(UTC).date().isoformat(),
            "last_seen_at": utc_timestamp(now),
            "inserted_at": naive_timestamp(now),
            "updated_at": naive_timestamp(now),
        }
        unknown = set(fields) - set(customer)
        if unknown:
            raise ValueError(f"unknown customer fields: {sorted(unknown)}")
        customer.update(copy.deepcopy(fields))
        self._customers[customer["id"]] = customer
        return str(customer["id"])

    def _insert_message(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Store a message with the schema defaults for whatever `attrs` leaves out."""
        message = {
            "id": str(uuid.uuid4()),
            "body": None,
            "type": "reply",
            "content_type": "text",
            "private": False,
            "source": "chat",
            "subject": None,
            "sent_at": None,
            "seen_at": None,
            "metadata": None,
            "customer_id": None,
            "user_id": None,
            **copy.deepcopy(attrs),
            "inserted_at": self._naive_now(),
            "seq": next(self._seq),
        }
        self._messages[message["id"]] = message
        return message

    def _after_message(self, message: dict[str, Any]) -> list[Event]:
        """Webhook notification, then ``Messages.Helpers.handle_post_creation_hooks``."""
        events: list[Event] = []
        metadata = message["metadata"]
        if not (isinstance(metadata, dict) and metadata.get("disable_webhook_events") is True):
            events.append((message["account_id"], "message:created", self._message_expanded(message)))
        conversation = self._conversations[message["conversation_id"]]
        updates: dict[str, Any] = {}
        agent_replies = sum(
            1
            for m in self._messages.values()
            if m["conversation_id"] == conversation["id"] and m["user_id"] is not None
        )
        if message["user_id"] is not None and agent_replies == 1:
            updates["assignee_id"] = message["user_id"]
            updates["first_replied_at"] = message["inserted_at"] + "Z"
        if message["type"] == "bot":
            updates["read"] = False
        elif message["customer_id"] is None:
            updates["read"] = True
        elif message["user_id"] is None:
            updates.update(read=False, status="open")
        changes = {k: v for k, v in updates.items() if conversation[k] != v}
        if changes:
            self._commit_conversation(conversation, changes)
            payload = self._conversation_basic(conversation)
            events.append((conversation["account_id"], CONVERSATION_UPDATED, payload))
        # ``Workers.MessageCreatedActions`` (an Oban job, no webhook): ``Conversations.mark_activity``.
        conversation["last_activity_at"] = utc_timestamp(self._now())
        return events

    def _commit_conversation(self, conversation: dict[str, Any], changes: dict[str, Any]) -> None:
        """Apply a valid changeset: status side effects (``put_closed_and_last_activity_at``), then FKs."""
        if "status" in changes:
            now = utc_timestamp(self._now())
            if changes["status"] == "closed":
                changes.update(closed_at=now, last_activity_at=now)
            elif changes["status"] == "open":
                changes.update(closed_at=None, last_activity_at=now)
            else:
                raise _Crash
        foreign_keys = {
            "account_id": set(self.accounts),
            "customer_id": set(self._customers),
            "inbox_id": {a.inbox_id for a in self.accounts.values()},
        }
        missing = {
            name: ["does not exist"]
            for name, ids in foreign_keys.items()
            if name in changes and changes[name] not in ids
        }
        if missing:
            raise _ChangesetError(missing)
        users = {u.id for a in self.accounts.values() for u in a.users}
        if changes.get("assignee_id") is not None and changes["assignee_id"] not in users:
            raise _Crash
        conversation.update(changes)
        conversation["updated_at"] = self._naive_now()

    def _fetch(self, table: dict[str, dict[str, Any]], row_id: str) -> dict[str, Any]:
        """``Repo.get!``: malformed uuid is a 400, a missing row a 404, both in Phoenix's shape."""
        if not _UUID.match(row_id):
            raise _HttpError(400, BAD_REQUEST)
        row = table.get(row_id.lower())
        if row is None:
            raise _HttpError(404, PHOENIX_NOT_FOUND)
        return row

    def _own_conversation(self, account: Account, conversation_id: str) -> dict[str, Any]:
        """The helpers act inside one account; a conversation of another one is a test bug."""
        conversation = self._conversations[conversation_id]
        if conversation["account_id"] != account.id:
            raise ValueError(f"conversation {conversation_id} is not in account {account.id}")
        return conversation

    def _default_agent(self, account: Account) -> User:
        """The author of agent messages when the test names none."""
        if not account.agents:
            raise ValueError("the account has no human agent; call add_agent() or pass user_id")
        return account.agents[0]

    def _user(self, user_id: int | None) -> User | None:
        """Any account's user by id (messages may point across accounts, as in Papercups)."""
        for account in self.accounts.values():
            for user in account.users:
                if user.id == user_id:
                    return user
        return None

    def _now(self) -> datetime:
        """The fake's current time (a naive clock value is taken as UTC)."""
        moment = self.clock()
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def _naive_now(self) -> str:
        return naive_timestamp(self._now())

    # -- views ---------------------------------------------------------------------------------
    def _customer_basic(self, customer: dict[str, Any]) -> dict[str, Any]:
        """CustomerView "basic.json" (in message payloads)."""
        return copy.deepcopy(
            {
                "id": customer["id"],
                "object": "customer",
                "name": customer["name"],
                "email": customer["email"],
                "created_at": customer["inserted_at"],
                "updated_at": customer["updated_at"],
                **{
                    k: customer[k]
                    for k in (
                        "phone",
                        "external_id",
                        "profile_photo_url",
                        "company_id",
                        "host",
                        "pathname",
                        "current_url",
                        "browser",
                        "os",
                        "metadata",
                    )
                },
                "title": customer["name"] or customer["email"] or "Anonymous User",
            }
        )

    def _customer_full(self, customer: dict[str, Any]) -> dict[str, Any]:
        """CustomerView "customer.json" (in the expanded conversation): basic.json plus the visit details."""
        extra = {k: customer[k] for k in ("first_seen", "last_seen_at", "ip", "time_zone")}
        return {**self._customer_basic(customer), **copy.deepcopy(extra)}

    def _message_view(self, message: dict[str, Any]) -> dict[str, Any]:
        """MessageView "message.json" (the list endpoint)."""
        return copy.deepcopy(
            {
                "id": message["id"],
                "object": "message",
                **{k: message[k] for k in ("body", "type", "content_type", "private", "source")},
                "created_at": message["inserted_at"],
                **{k: message[k] for k in ("sent_at", "seen_at", "customer_id", "conversation_id")},
                "account_id": message["account_id"],
                "user_id": message["user_id"],
                "metadata": message["metadata"],
            }
        )

    def _message_expanded(self, message: dict[str, Any]) -> dict[str, Any]:
        """MessageView "expanded.json" (create response, webhook payload); ``customer`` only if it has one."""
        user = self._user(message["user_id"])
        head = {
            "id": message["id"],
            "object": "message",
            **{k: message[k] for k in ("body", "type", "content_type", "private", "source")},
            "created_at": message["inserted_at"],
            **{k: message[k] for k in ("sent_at", "seen_at", "conversation_id", "account_id")},
        }
        user_part = {"user_id": message["user_id"], "user": user.view() if user is not None else None}
        tail = {"attachments": [], "metadata": message["metadata"]}
        if message["customer_id"] is None:
            return copy.deepcopy({**head, "customer_id": None, **user_part, **tail})
        customer = self._customer_basic(self._customers[message["customer_id"]])
        customer_part = {"customer_id": message["customer_id"], "customer": customer}
        return copy.deepcopy({**head, **user_part, **customer_part, **tail})

    def _conversation_basic(self, conversation: dict[str, Any]) -> dict[str, Any]:
        """ConversationView "basic.json" (webhook payload and update response)."""
        return copy.deepcopy(
            {
                "id": conversation["id"],
                "object": "conversation",
                "source": conversation["source"],
                "created_at": conversation["inserted_at"],
                **{
                    k: conversation[k]
                    for k in (
                        "closed_at",
                        "last_activity_at",
                        "status",
                        "read",
                        "priority",
                        "subject",
                        "account_id",
                        "customer_id",
                        "assignee_id",
                        "inbox_id",
                        "metadata",
                    )
                },
            }
        )

    def _conversation_expanded(self, conversation: dict[str, Any]) -> dict[str, Any]:
        """ConversationView "expanded.json": basic + customer, messages, tags, mentions."""
        rows = sorted(
            (m for m in self._messages.values() if m["conversation_id"] == conversation["id"]),
            key=lambda m: m["seq"],
        )
        return {
            **self._conversation_basic(conversation),
            "customer": self._customer_full(self._customers[conversation["customer_id"]]),
            "messages": [self._message_expanded(m) for m in rows],
            "tags": [],
            "mentions": [],
        }

    # -- webhook delivery ----------------------------------------------------------------------
    def _deliver(self, events: list[Event]) -> None:
        """Send each event to the account's interested subscriptions, now or in a background thread."""
        for account_id, event, payload in events:
            with self._db:
                account = self.accounts.get(account_id)
                urls = [s.webhook_url for s in (account.subscriptions if account else []) if s.wants(event)]
                if not urls:
                    continue
                if self._drops.take(event):
                    dropped = [WebhookDelivery(url, event, payload, dropped=True) for url in urls]
                    self.webhook_log.extend(dropped)
                    continue
            if self.sync_webhooks:
                self._send_all(urls, event, payload)
            else:
                self.in_background(self._send_all, urls, event, payload)

    def _send_all(self, urls: list[str], event: str, payload: dict[str, Any]) -> None:
        """Papercups calls the subscriptions one after another; failures are ignored, never retried."""
        for url in urls:
            self._post(url, event, payload)

    def _post(self, url: str, event: str, payload: Any) -> WebhookDelivery:
        """One POST of ``{"event", "payload"}``; the outcome is logged in ``webhook_log``."""
        delivery = WebhookDelivery(url, event, copy.deepcopy(payload))
        data = json.dumps({"event": event, "payload": payload}, separators=(",", ":")).encode()
        result = post(url, data, {"content-type": "application/json"}, self.webhook_timeout)
        delivery.status, delivery.content_type, delivery.response_body = result.status, result.content_type, result.body
        delivery.error = result.error
        with self._db:
            self.webhook_log.append(delivery)
        return delivery


# -- casting, like Ecto's cast/validate ----------------------------------------------------------
def _cast_string(value: Any) -> str | None:
    """Ecto ``:string``: binaries only; ``""`` is nil."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def _cast_boolean(value: Any) -> bool | None:
    """Ecto ``:boolean``: JSON booleans or ``"true"``/``"false"``/``"1"``/``"0"``."""
    if value is None or isinstance(value, bool):
        return value
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(value)


def _cast_integer(value: Any) -> int | None:
    """Ecto ``:integer``: integers or decimal strings."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ValueError(value)


def _cast_uuid(value: Any) -> str | None:
    """Ecto ``:binary_id``: a hyphenated UUID, normalised to lower case."""
    if value is None:
        return None
    if isinstance(value, str) and _UUID.match(value):
        return value.lower()
    raise ValueError(value)


def _cast_map(value: Any) -> dict[str, Any] | None:
    """Ecto ``:map``: JSON objects only."""
    if value is None or isinstance(value, dict):
        return value
    raise ValueError(value)


def _cast_utc_datetime(value: Any) -> str | None:
    """Ecto ``:utc_datetime``: ISO 8601, offset optional (UTC assumed), truncated to seconds."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(value)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_timestamp(moment)


Casts = dict[str, Callable[[Any], Any]]

MESSAGE_FIELDS: Casts = {
    "body": _cast_string,
    "type": _cast_string,
    "content_type": _cast_string,
    "private": _cast_boolean,
    "conversation_id": _cast_uuid,
    "account_id": _cast_uuid,
    "customer_id": _cast_uuid,
    "user_id": _cast_integer,
    "sent_at": _cast_utc_datetime,
    "seen_at": _cast_utc_datetime,
    "source": _cast_string,
    "subject": _cast_string,
    "metadata": _cast_map,
}

CONVERSATION_FIELDS: Casts = {
    "status": _cast_string,
    "priority": _cast_string,
    "read": _cast_boolean,
    "assignee_id": _cast_integer,
    "account_id": _cast_uuid,
    "inbox_id": _cast_uuid,
    "customer_id": _cast_uuid,
    "archived_at": _cast_utc_datetime,
    "first_replied_at": _cast_utc_datetime,
    "closed_at": _cast_utc_datetime,
    "source": _cast_string,
    "subject": _cast_string,
    "metadata": _cast_map,
}


def _cast(params: dict[str, Any], fields: Casts) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Cast the permitted fields; unknown ones are ignored, uncastable ones become "is invalid"."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, cast in fields.items():
        if name in params:
            try:
                values[name] = cast(params[name])
            except ValueError:
                errors[name] = ["is invalid"]
    return values, errors


def _cast_message(params: dict[str, Any]) -> dict[str, Any]:
    """``Message.changeset``: required account/conversation, type and source inclusion."""
    attrs, errors = _cast(params, MESSAGE_FIELDS)
    for name in ("account_id", "conversation_id"):
        if attrs.get(name) is None and name not in errors:
            errors[name] = ["can't be blank"]
    for name, allowed in (("type", MESSAGE_TYPES), ("source", MESSAGE_SOURCES)):
        if attrs.get(name) is not None and attrs[name] not in allowed:
            errors.setdefault(name, []).append("is invalid")
    if errors:
        raise _ChangesetError(errors)
    return attrs


def _cast_conversation(conversation: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``Conversation.changeset``: the changes (values that differ), or a 422."""
    values, errors = _cast(params, CONVERSATION_FIELDS)
    changes = {k: v for k, v in values.items() if conversation[k] != v}
    merged = {**conversation, **changes}
    for name in ("status", "account_id", "customer_id"):
        if merged[name] is None and name not in errors:
            errors[name] = ["can't be blank"]
    if changes.get("source") is not None and changes["source"] not in CONVERSATION_SOURCES:
        errors.setdefault("source", []).append("is invalid")
    if errors:
        raise _ChangesetError(errors)
    return changes


def _json_body(request: RecordedRequest) -> Any:
    """The JSON body; unparsable JSON is Plug.Parsers' 400."""
    try:
        return request.json()
    except ValueError:
        raise _HttpError(400, BAD_REQUEST) from None


def _message_params(request: RecordedRequest) -> dict[str, Any]:
    """``%{"message" => params}`` or a 400 (no matching action clause); a non-map crashes."""
    body = _json_body(request)
    if not isinstance(body, dict) or "message" not in body:
        raise _HttpError(400, BAD_REQUEST)
    if not isinstance(body["message"], dict):
        raise _Crash
    return dict(body["message"])


def _ilike(pattern: str) -> re.Pattern[str]:
    """SQL ``ILIKE``: ``%`` any run, ``_`` one character, case-insensitive."""
    wildcards = {"%": ".*", "_": "."}
    return re.compile("".join(wildcards.get(c, re.escape(c)) for c in pattern), re.IGNORECASE | re.DOTALL)


CONVERSATION_PAGE_MAX = 50  # ChatApi.Repo's cursor pagination `maximum_limit`


def _activity_key(conversation: dict[str, Any]) -> tuple[bool, str, str]:
    """The list's sort key, descending: NULL activity first (PostgreSQL's DESC), then activity, then id."""
    return (conversation["last_activity_at"] is None, conversation["last_activity_at"] or "", conversation["id"])


def _cursor_encode(conversation: dict[str, Any]) -> str:
    """An opaque cursor (Paginator's are base64 terms) for the rows after this one."""
    key = [conversation["last_activity_at"], conversation["id"]]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _cursor_decode(cursor: str) -> tuple[bool, str, str] | None:
    try:
        activity, conversation_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        return None
    return (activity is None, activity or "", str(conversation_id))


def _json(status: int, body: Any) -> Reply:
    """A JSON reply with Phoenix's content type."""
    return Reply(status, body, {"content-type": JSON_CONTENT_TYPE})
