"""A Crisp simulator on a real local socket, following CRISP_NOTES.md beside this file ("What a faithful fake
Crisp must reproduce"). Over ~400 lines on purpose: one whole protocol (the REST API a plugin uses, its auth
and quota, signed hooks with retries) whose parts share the state and the lock.

What it reproduces, and how sure we are (the note's marks):
- every request needs ``Authorization: Basic base64(identifier:key)`` of the plugin token and
  ``X-Crisp-Tier: plugin`` (verified); 401 otherwise; a website that has not installed the plugin is 403;
- every JSON answer is the envelope ``{"error", "reason", "data"}``, errors included (verified; the error
  ``reason`` strings are inferred, so Netia must only read the status code);
- ``POST /v1/website/{w}/conversation/{s}/message`` returns ``data.fingerprint`` (verified); whether a
  fingerprint the plugin sends is kept is not verified (``honour_fingerprints``), nor whether Crisp echoes
  the plugin's own message back as ``message:received`` (``echo_plugin_messages``, echoed before the POST
  answers when hooks are synchronous: the worst case for recognising one's own echo);
- hooks: ``{"website_id","event","data","timestamp"}`` POSTed with ``X-Crisp-Request-Timestamp``,
  ``X-Crisp-Signature`` (hex HMAC-SHA256 over ``[timestamp;body]``), ``X-Crisp-Hook-Origin`` and
  ``X-Delivery-Attempt-Limit/Count``, retried on failure up to the limit (verified); the timestamp unit and
  whether a retry is signed afresh are not (``hook_timestamp_unit``, ``resign_retries``);
- routing, state, meta, read/delivered/compose, the conversation and message lists, the plugin's installed
  websites, ``plugin:subscription:updated``; changes made through the API emit the same hooks as an
  operator's (``hooks_for_api_changes``; unverified);
- a daily plugin quota answered with 429 or 420 (verified statuses; no ``Retry-After`` unless asked).

Hooks are delivered synchronously by default (before the triggering call returns), so tests are
deterministic; ``sync_hooks = False`` sends them from background threads (``wait_for_hooks()``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .base import DropRules, FakeServer, RecordedRequest, Reply, post

MESSAGE_TYPES = ("text", "file", "animation", "audio", "picker", "field", "carousel", "note", "event")
STATES = ("pending", "unresolved", "resolved")
META_FIELDS = ("nickname", "email", "phone", "address", "subject", "avatar", "ip", "segments", "data")
# Meta fields whose change a visitor makes, and the hook each emits.
META_EVENTS = {"email": "session:set_email", "phone": "session:set_phone", "nickname": "session:set_nickname"}
PER_PAGE_MIN, PER_PAGE_MAX, PER_PAGE_DEFAULT = 20, 50, 20

Clock = Callable[[], datetime]


def sign_hook(secret: str, timestamp: str, body: bytes) -> str:
    """Crisp's hook signature: lower hex HMAC-SHA256 over ``[timestamp;raw body]``."""
    message = b"[" + timestamp.encode() + b";" + body + b"]"
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def envelope(data: Any, reason: str = "resolved") -> dict[str, Any]:
    return {"error": False, "reason": reason, "data": data}


def _error(status: int, reason: str, message: str = "") -> Reply:
    data = {"message": message} if message else {}
    return Reply(status, {"error": True, "reason": reason, "data": data})


class _HttpError(Exception):
    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(reason)
        self.reply = _error(status, reason, message)


@dataclass
class Operator:
    """A human operator (agent) of a website; ids are UUIDs."""

    user_id: str
    nickname: str
    email: str
    role: str = "member"

    def view(self) -> dict[str, Any]:
        """One row of ``GET /website/{id}/operators/list`` (shape inferred from the docs' examples)."""
        first, _, last = self.nickname.partition(" ")
        details = {"user_id": self.user_id, "email": self.email, "first_name": first, "last_name": last}
        return {"type": "operator", "details": {**details, "role": self.role, "availability": "online"}}


@dataclass
class Website:
    """A Crisp workspace; `installed` says whether it installed the plugin."""

    website_id: str
    name: str
    installed: bool = True
    configured: bool = True
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    settings: dict[str, Any] = field(default_factory=dict)
    operators: list[Operator] = field(default_factory=list)
    changed_at: datetime | None = None


@dataclass
class HookAttempt:
    """One POST of a hook: its headers and what came back."""

    count: int
    timestamp: str
    signature: str
    status: int | None = None
    body: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class HookDelivery:
    """One event sent to the plugin's hook URL, with every attempt (none when `dropped`)."""

    event: str
    website_id: str
    body: bytes
    attempts: list[HookAttempt] = field(default_factory=list)
    dropped: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def delivered(self) -> bool:
        return any(attempt.ok for attempt in self.attempts)


class FakeCrisp(FakeServer):
    """Crisp as one plugin sees it: its token, the websites that installed it, their conversations, hooks."""

    def __init__(self, *, clock: Clock | None = None, hook_timeout: float = 5.0) -> None:
        super().__init__()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.identifier = str(uuid.uuid4())
        self.key = secrets.token_hex(32)
        self.plugin_id = str(uuid.uuid4())
        self.plugin_urn = "urn:netia.test:netia:0"
        self.signing_secret = secrets.token_hex(16)
        self.hook_url: str | None = None
        self.hook_events: set[str] | None = None  # None: every event
        self.hook_origin = f"plugin/rtm {secrets.token_hex(8)} production"
        self.hook_timeout = hook_timeout
        self.attempt_limit = 3
        self.hook_timestamp_unit = "ms"
        self.resign_retries = True
        self.sync_hooks = True
        self.honour_fingerprints = True
        self.echo_plugin_messages = True
        self.echo_user_id: str | None = None
        self.hooks_for_api_changes = True
        self.daily_quota: int | None = None
        self.quota_status = 429
        self.quota_retry_after: int | None = None
        self.message_page_size = 20
        self.website_page_size = 20
        self.requests_today = 0
        self.websites: dict[str, Website] = {}
        self.hook_log: list[HookDelivery] = []
        self._sessions: dict[str, dict[str, Any]] = {}
        self._drops = DropRules()
        self._last_ms = 0
        self._db = threading.RLock()
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.route(method, "/", lambda _request: _error(404, "not_found"))
            self.route(method, "/v1/", self._api)

    @property
    def api_url(self) -> str:
        """What CRISP_API_URL points at: the REST base including ``/v1``."""
        return f"{self.url}/v1"

    # -- websites and operators ------------------------------------------------------------------
    def add_website(self, name: str = "Acme", *, installed: bool = True, website_id: str | None = None) -> Website:
        with self._db:
            website = Website(website_id or str(uuid.uuid4()), name, installed=installed, changed_at=self._now())
            self.websites[website.website_id] = website
            return website

    def add_operator(self, website: Website, nickname: str = "Ana Operator", email: str | None = None) -> Operator:
        with self._db:
            operator = Operator(str(uuid.uuid4()), nickname, email or f"{nickname.split()[0].lower()}@crisp.test")
            website.operators.append(operator)
            return operator

    def install(self, website: Website) -> None:
        """The website installs the plugin: ``plugin:subscription:updated`` with ``bound: true``."""
        self._set_installed(website, True)

    def uninstall(self, website: Website) -> None:
        """The website removes the plugin (``bound: false``, inferred to mean uninstalled)."""
        self._set_installed(website, False)

    def _set_installed(self, website: Website, installed: bool) -> None:
        with self._db:
            website.installed, website.changed_at = installed, self._now()
        data = {"website_id": website.website_id, "plugin_id": self.plugin_id, "bound": installed, "target": "website"}
        self._emit(website.website_id, "plugin:subscription:updated", data, even_if_uninstalled=True)

    # -- failure knobs ---------------------------------------------------------------------------
    def drop_next_hook(self, *, event: str | None = None, times: int = 1) -> None:
        """Lose the next `times` hooks (of `event`) entirely, retries included; the data is still stored."""
        with self._db:
            self._drops.add(event, times)

    def fail_next(self, method: str, path_prefix: str, status: int, times: int = 1, reason: str = "error") -> None:
        """Answer the next `times` matching requests with `status` and the error envelope, without handling them."""
        self.inject_fault(method, path_prefix, times=times, reply=_error(status, reason))

    def reset_quota(self) -> None:
        with self._db:
            self.requests_today = 0

    # -- a visitor and operators -----------------------------------------------------------------
    def start_session(self, website: Website, *, nickname: str | None = None, email: str | None = None) -> str:
        """A visitor opens the chatbox: a session with no message yet (no hook)."""
        with self._db:
            session_id = f"session_{uuid.uuid4()}"
            now = self._ms()
            nickname = nickname or f"visitor{random.randint(100000, 999999)}"
            self._sessions[session_id] = {
                "session_id": session_id,
                "website_id": website.website_id,
                "inbox_id": None,
                "people_id": str(uuid.uuid4()),
                "state": "pending",
                "assigned": None,
                "meta": {"nickname": nickname, "email": email, "phone": None, "segments": [], "data": {}},
                "created_at": now,
                "updated_at": now,
                "messages": [],
            }
            return session_id

    def visitor_says(self, website: Website, session_id: str, text: str) -> dict[str, Any]:
        """The visitor sends a text: ``message:send``."""
        return self.visitor_sends(website, session_id, "text", text)

    def visitor_sends(self, website: Website, session_id: str, kind: str, content: Any) -> dict[str, Any]:
        with self._db:
            session = self._session(website.website_id, session_id)
            user = {"nickname": session["meta"]["nickname"], "user_id": session_id}
            message = self._insert(session, kind, "user", "chat", content, user)
            if session["state"] == "resolved":
                session["state"] = "pending"
        self._emit(website.website_id, "message:send", message)
        return copy.deepcopy(message)

    def visitor_sets(self, website: Website, session_id: str, **meta: Any) -> None:
        """The visitor gives an email, phone or nickname: ``session:set_email`` / ``_phone`` / ``_nickname``."""
        self._meta_update(website.website_id, session_id, meta)

    def operator_says(
        self, website: Website, session_id: str, text: str, *, operator: Operator | None = None, note: bool = False
    ) -> dict[str, Any]:
        """An operator replies (or writes a private note) in the Crisp inbox: ``message:received``."""
        operator = operator or website.operators[0]
        with self._db:
            session = self._session(website.website_id, session_id)
            user = {"type": "website", "nickname": operator.nickname, "user_id": operator.user_id}
            message = self._insert(session, "note" if note else "text", "operator", "chat", text, user)
            if session["state"] == "pending" and not note:
                session["state"] = "unresolved"
        self._emit(website.website_id, "message:received", message)
        return copy.deepcopy(message)

    def operator_assigns(self, website: Website, session_id: str, operator: Operator | None) -> None:
        """An operator (re)assigns the conversation: ``session:set_routing``."""
        self._routing_update(website.website_id, session_id, operator.user_id if operator else None)

    def operator_sets_state(self, website: Website, session_id: str, state: str) -> None:
        """An operator marks the conversation resolved (or unresolved): ``session:set_state``."""
        self._state_update(website.website_id, session_id, state)

    # -- inspection ------------------------------------------------------------------------------
    def conversation(self, session_id: str) -> dict[str, Any]:
        with self._db:
            return self._conversation_view(self._sessions[session_id])

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        """The conversation's messages, oldest first."""
        with self._db:
            return copy.deepcopy(self._sessions[session_id]["messages"])

    def hooks(self, event: str | None = None) -> list[HookDelivery]:
        """Hooks emitted and not dropped (sent, or kept unsent without a hook URL), oldest first."""
        with self._db:
            return [d for d in self.hook_log if not d.dropped and (event is None or d.event == event)]

    def wait_for_hooks(self, timeout: float = 5.0) -> None:
        self.wait_for_background(timeout)

    def redeliver(self, delivery: HookDelivery) -> HookDelivery:
        """Send an earlier hook again, same body (as Crisp does when it did not see a 2xx)."""
        again = HookDelivery(delivery.event, delivery.website_id, delivery.body)
        self._send(again)
        return again

    # -- REST --------------------------------------------------------------------------------------
    def _api(self, request: RecordedRequest) -> Reply:
        if not self._authenticated(request):
            return _error(401, "unauthorized", "Authentication failed")
        with self._db:
            self.requests_today += 1
            over_quota = self.daily_quota is not None and self.requests_today > self.daily_quota
        if over_quota:
            reply = _error(self.quota_status, "quota_limit_exceeded", "Plugin quota exceeded")
            if self.quota_retry_after is not None:
                reply.headers["Retry-After"] = str(self.quota_retry_after)
            return reply
        segments = request.path.removeprefix("/v1/").strip("/").split("/")
        emitted: list[tuple[str, str, dict[str, Any]]] = []
        try:
            with self._db:
                reply = self._handle(request, segments, emitted)
        except _HttpError as error:
            return error.reply
        for website_id, event, data in emitted:
            self._emit(website_id, event, data)
        return reply

    def _authenticated(self, request: RecordedRequest) -> bool:
        if request.headers.get("x-crisp-tier") != "plugin":
            return False
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            presented = base64.b64decode(encoded, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        expected = f"{self.identifier}:{self.key}"
        return scheme.lower() == "basic" and hmac.compare_digest(presented.encode(), expected.encode())

    def _handle(self, request: RecordedRequest, segments: list[str], emitted: list[Any]) -> Reply:
        method = request.method
        if segments[:2] == ["plugin", "connect"]:
            return self._plugin_connect(request, segments[2:])
        if len(segments) < 3 or segments[0] != "website":
            raise _HttpError(404, "not_found")
        website = self._website(segments[1])
        rest = segments[2:]
        if method == "GET" and rest == ["operators", "list"]:
            return Reply(200, envelope([operator.view() for operator in website.operators]))
        if method == "GET" and rest[0] == "conversations" and len(rest) == 2:
            return self._list_conversations(request, website, rest[1])
        if rest[0] != "conversation" or len(rest) < 2:
            raise _HttpError(404, "not_found")
        session = self._session(website.website_id, rest[1])
        action = rest[2:]
        if method == "GET" and not action:
            return Reply(200, envelope(self._conversation_view(session)))
        if method == "GET" and action == ["messages"]:
            return Reply(200, envelope(self._list_messages(request, session)))
        if method == "GET" and len(action) == 2 and action[0] == "message":
            return Reply(200, envelope(copy.deepcopy(self._message(session, action[1]))))
        if method == "POST" and action == ["message"]:
            return self._send_message(request, website, session, emitted)
        if method == "GET" and action == ["routing"]:
            assigned = {"user_id": session["assigned"]} if session["assigned"] else None
            return Reply(200, envelope({"assigned": assigned}))
        if method == "GET" and action == ["state"]:
            return Reply(200, envelope({"state": session["state"]}))
        if method == "GET" and action == ["meta"]:
            return Reply(200, envelope(copy.deepcopy(session["meta"])))
        if method == "PATCH" and len(action) == 1:
            return self._patch(request, website, session, action[0], emitted)
        raise _HttpError(404, "not_found")

    def _plugin_connect(self, request: RecordedRequest, rest: list[str]) -> Reply:
        if request.method == "GET" and rest == ["account"]:
            return Reply(200, envelope({"plugin_id": self.plugin_id}))
        if request.method == "GET" and len(rest) == 3 and rest[:2] == ["websites", "all"]:
            page = _page_number(rest[2])
            only_configured = _query(request, "filter_configured") == "1"
            rows = [w for w in self.websites.values() if w.installed and (w.configured or not only_configured)]
            size = self.website_page_size
            return Reply(200, envelope([_website_row(w) for w in rows[(page - 1) * size : page * size]]))
        if request.method == "GET" and rest == ["websites", "since"]:
            try:
                since = datetime.fromisoformat(_query(request, "date_since") or "")
            except ValueError:
                raise _HttpError(400, "invalid_data", "date_since must be ISO 8601") from None
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            changed = [w for w in self.websites.values() if w.changed_at is not None and w.changed_at >= since]
            since_rows = [{**_website_row(w), "difference": "added" if w.installed else "removed"} for w in changed]
            return Reply(200, envelope(since_rows))
        raise _HttpError(404, "not_found")

    def _list_conversations(self, request: RecordedRequest, website: Website, page_text: str) -> Reply:
        page = _page_number(page_text)
        per_page = int(_query(request, "per_page") or PER_PAGE_DEFAULT)
        per_page = min(PER_PAGE_MAX, max(PER_PAGE_MIN, per_page))
        rows = [
            s
            for s in self._sessions.values()
            if s["website_id"] == website.website_id and (s["messages"] or _query(request, "include_empty") == "1")
        ]
        if _query(request, "filter_resolved") == "1":
            rows = [s for s in rows if s["state"] == "resolved"]
        if _query(request, "filter_not_resolved") == "1":
            rows = [s for s in rows if s["state"] != "resolved"]
        if _query(request, "filter_unassigned") == "1":
            rows = [s for s in rows if s["assigned"] is None]
        order = "created_at" if _query(request, "order_date_created") == "1" else "updated_at"
        rows.sort(key=lambda s: s[order], reverse=True)
        chosen = rows[(page - 1) * per_page : page * per_page]
        return Reply(200, envelope([self._conversation_view(s) for s in chosen]))

    def _list_messages(self, request: RecordedRequest, session: dict[str, Any]) -> list[dict[str, Any]]:
        """Without a bound: the last page; ``timestamp_before``: the page before it; ``timestamp_after``: after."""
        rows = session["messages"]
        size = self.message_page_size
        before, after = _query(request, "timestamp_before"), _query(request, "timestamp_after")
        try:
            if after is not None:
                return copy.deepcopy([m for m in rows if m["timestamp"] > int(after)][:size])
            if before is not None:
                rows = [m for m in rows if m["timestamp"] < int(before)]
        except ValueError:
            raise _HttpError(400, "invalid_data", "timestamps are integers (ms)") from None
        return copy.deepcopy(rows[-size:])

    def _send_message(
        self, request: RecordedRequest, website: Website, session: dict[str, Any], emitted: list[Any]
    ) -> Reply:
        body = _json_object(request)
        kind, author, origin, content = (body.get(k) for k in ("type", "from", "origin", "content"))
        if kind not in MESSAGE_TYPES or author not in ("user", "operator"):
            raise _HttpError(400, "invalid_data", "type or from is invalid")
        if not isinstance(origin, str) or not (origin == "chat" or origin.startswith("urn:")):
            raise _HttpError(400, "invalid_data", "origin is invalid")
        if kind in ("text", "note") and (not isinstance(content, str) or not content):
            raise _HttpError(400, "invalid_data", "content must be a non-empty string")
        user = body.get("user") or {}
        if not isinstance(user, dict):
            raise _HttpError(400, "invalid_data", "user must be an object")
        wanted = body.get("fingerprint")
        if wanted is not None and (isinstance(wanted, bool) or not isinstance(wanted, int)):
            raise _HttpError(400, "invalid_data", "fingerprint must be an integer")
        if author == "operator":
            user = {k: user[k] for k in ("type", "nickname", "avatar") if k in user}
            if self.echo_user_id is not None:
                user["user_id"] = self.echo_user_id
        else:
            user = {"nickname": session["meta"]["nickname"], "user_id": session["session_id"]}
        fingerprint = wanted if self.honour_fingerprints and wanted is not None else None
        extra = {k: body[k] for k in ("stealth", "automated", "translated") if isinstance(body.get(k), bool)}
        message = self._insert(session, kind, author, origin, content, user, fingerprint=fingerprint, **extra)
        if author == "user":
            emitted.append((website.website_id, "message:send", message))
        elif self.echo_plugin_messages:
            emitted.append((website.website_id, "message:received", message))
        return Reply(202, envelope({"fingerprint": message["fingerprint"]}, "dispatched"))

    def _patch(
        self, request: RecordedRequest, website: Website, session: dict[str, Any], action: str, emitted: list[Any]
    ) -> Reply:
        body = _json_object(request)
        changes: list[Any] = []
        if action == "routing":
            assigned = body.get("assigned", ...)
            if assigned is ...:
                raise _HttpError(400, "invalid_data", "assigned is required")
            user_id = assigned.get("user_id") if isinstance(assigned, dict) else None
            if assigned is not None and user_id not in {o.user_id for o in website.operators}:
                raise _HttpError(400, "invalid_data", "assigned.user_id is not an operator of this website")
            changes = self._routing_change(session, user_id)
        elif action == "state":
            if body.get("state") not in STATES:
                raise _HttpError(400, "invalid_data", "state must be pending, unresolved or resolved")
            changes = self._state_change(session, body["state"])
        elif action == "meta":
            changes = self._meta_change(session, body)
        elif action not in ("read", "delivered", "compose"):
            raise _HttpError(404, "not_found")
        if self.hooks_for_api_changes:
            emitted.extend(changes)
        return Reply(200, envelope({}, "updated"))

    # -- state changes (under the lock), each returning the hooks it triggers ----------------------
    def _routing_change(self, session: dict[str, Any], user_id: str | None) -> list[Any]:
        previous = session["assigned"]
        if previous == user_id:
            return []
        session["assigned"] = user_id
        session["updated_at"] = self._ms()
        data = {**_session_keys(session), "routing_id": user_id, "previous_routing_id": previous}
        return [(session["website_id"], "session:set_routing", data)]

    def _state_change(self, session: dict[str, Any], state: str) -> list[Any]:
        if session["state"] == state:
            return []
        session["state"] = state
        session["updated_at"] = self._ms()
        return [(session["website_id"], "session:set_state", {**_session_keys(session), "state": state})]

    def _meta_change(self, session: dict[str, Any], changes: dict[str, Any]) -> list[Any]:
        events = []
        for name, value in changes.items():
            if name not in META_FIELDS or session["meta"].get(name) == value:
                continue
            session["meta"][name] = copy.deepcopy(value)
            if name in META_EVENTS:
                events.append((session["website_id"], META_EVENTS[name], {**_session_keys(session), name: value}))
        session["updated_at"] = self._ms()
        return events

    def _routing_update(self, website_id: str, session_id: str, user_id: str | None) -> None:
        with self._db:
            events = self._routing_change(self._session(website_id, session_id), user_id)
        self._emit_all(events)

    def _state_update(self, website_id: str, session_id: str, state: str) -> None:
        with self._db:
            events = self._state_change(self._session(website_id, session_id), state)
        self._emit_all(events)

    def _meta_update(self, website_id: str, session_id: str, changes: dict[str, Any]) -> None:
        with self._db:
            events = self._meta_change(self._session(website_id, session_id), changes)
        self._emit_all(events)

    # -- storage ---------------------------------------------------------------------------------
    def _insert(
        self,
        session: dict[str, Any],
        kind: str,
        author: str,
        origin: str,
        content: Any,
        user: dict[str, Any],
        *,
        fingerprint: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Store a message (caller holds the lock); returns its hook ``data``."""
        timestamp = self._ms()
        taken = {m["fingerprint"] for m in session["messages"]}
        while fingerprint is None or fingerprint in taken:
            fingerprint = timestamp * 100 + random.randint(0, 99)
        message = {
            **_session_keys(session),
            "type": kind,
            "from": author,
            "origin": origin,
            "content": copy.deepcopy(content),
            "fingerprint": fingerprint,
            "timestamp": timestamp,
            "stamped": True,
            "user": copy.deepcopy(user),
            **extra,
        }
        session["messages"].append(message)
        session["updated_at"] = timestamp
        return copy.deepcopy(message)

    def _website(self, website_id: str) -> Website:
        website = self.websites.get(website_id)
        if website is None:
            raise _HttpError(404, "website_not_found")
        if not website.installed:
            raise _HttpError(403, "not_allowed", "The plugin is not installed on this website")
        return website

    def _session(self, website_id: str, session_id: str) -> dict[str, Any]:
        session = self._sessions.get(session_id)
        if session is None or session["website_id"] != website_id:
            raise _HttpError(404, "session_not_found")
        return session

    def _message(self, session: dict[str, Any], fingerprint: str) -> dict[str, Any]:
        for message in session["messages"]:
            if str(message["fingerprint"]) == fingerprint:
                return dict(message)
        raise _HttpError(404, "message_not_found")

    def _conversation_view(self, session: dict[str, Any]) -> dict[str, Any]:
        """A conversation as the list and ``GET …/conversation/{s}`` render it."""
        last = session["messages"][-1] if session["messages"] else None
        preview = None
        if last is not None:
            excerpt = last["content"] if isinstance(last["content"], str) else f"({last['type']})"
            preview = {
                "type": last["type"],
                "from": last["from"],
                "excerpt": excerpt,
                "fingerprint": last["fingerprint"],
            }
        unread_visitor = sum(1 for m in session["messages"] if m["from"] == "user")
        return copy.deepcopy(
            {
                **_session_keys(session),
                "people_id": session["people_id"],
                "state": session["state"],
                "is_verified": False,
                "is_blocked": False,
                "availability": "online",
                "active": {"now": True},
                "last_message": preview["excerpt"] if preview else "",
                "preview_message": preview,
                "assigned": {"user_id": session["assigned"]} if session["assigned"] else None,
                "unread": {"operator": 0, "visitor": unread_visitor},
                "meta": session["meta"],
                "created_at": session["created_at"],
                "updated_at": session["updated_at"],
                "waiting_since": session["updated_at"],
            }
        )

    def _now(self) -> datetime:
        moment = self.clock()
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def _ms(self) -> int:
        """Milliseconds since the epoch, strictly increasing (message timestamps order the lists)."""
        with self._db:
            self._last_ms = max(self._last_ms + 1, int(self._now().timestamp() * 1000))
            return self._last_ms

    # -- hooks -------------------------------------------------------------------------------------
    def _emit_all(self, events: list[Any]) -> None:
        for website_id, event, data in events:
            self._emit(website_id, event, data)

    def _emit(self, website_id: str, event: str, data: dict[str, Any], *, even_if_uninstalled: bool = False) -> None:
        with self._db:
            website = self.websites.get(website_id)
            wanted = self.hook_events is None or event in self.hook_events
            if website is None or not wanted or not (website.installed or even_if_uninstalled):
                return
            body = {"website_id": website_id, "event": event, "data": data, "timestamp": self._ms()}
            delivery = HookDelivery(event, website_id, json.dumps(body, separators=(",", ":")).encode())
            delivery.dropped = self._drops.take(event)
            if delivery.dropped or self.hook_url is None:  # no hook URL: kept unsent, for a test to post itself
                self.hook_log.append(delivery)
                return
        if self.sync_hooks:
            self._send(delivery)
        else:
            self.in_background(self._send, delivery)

    def _hook_timestamp(self) -> str:
        seconds = self._now().timestamp()
        return str(int(seconds * 1000) if self.hook_timestamp_unit == "ms" else int(seconds))

    def _send(self, delivery: HookDelivery) -> None:
        """POST the hook, retrying (same body) until a 2xx or the attempt limit."""
        with self._db:
            self.hook_log.append(delivery)
        timestamp = self._hook_timestamp()
        for count in range(1, self.attempt_limit + 1):
            if count > 1 and self.resign_retries:
                timestamp = self._hook_timestamp()
            attempt = HookAttempt(count, timestamp, sign_hook(self.signing_secret, timestamp, delivery.body))
            self._post(attempt, delivery.body)
            with self._db:
                delivery.attempts.append(attempt)
            if attempt.ok:
                return

    def _post(self, attempt: HookAttempt, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Crisp-Hooks",
            "X-Crisp-Hook-Origin": self.hook_origin,
            "X-Crisp-Request-Timestamp": attempt.timestamp,
            "X-Crisp-Signature": attempt.signature,
            "X-Delivery-Attempt-Limit": str(self.attempt_limit),
            "X-Delivery-Attempt-Count": str(attempt.count),
        }
        result = post(self.hook_url or "", body, headers, self.hook_timeout)
        attempt.status, attempt.body, attempt.error = result.status, result.body, result.error


def _session_keys(session: dict[str, Any]) -> dict[str, Any]:
    return {"website_id": session["website_id"], "session_id": session["session_id"], "inbox_id": session["inbox_id"]}


def _website_row(website: Website) -> dict[str, Any]:
    """One row of ``plugin/connect/websites``: id, the website's plugin token and its plugin settings."""
    return {"website_id": website.website_id, "token": website.token, "settings": copy.deepcopy(website.settings)}


def _query(request: RecordedRequest, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


def _page_number(text: str) -> int:
    if not re.fullmatch(r"[1-9]\d*", text):
        raise _HttpError(400, "invalid_data", "the page number starts at 1")
    return int(text)


def _json_object(request: RecordedRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise _HttpError(400, "invalid_data", "the body is not JSON") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _HttpError(400, "invalid_data", "the body must be an object")
    return body
