"""Crisp: the only module that knows its protocol (signed hooks, the REST API of a plugin, the adapter, the chatbox).

Built on the verified facts of the protocol note (tests/fakes/CRISP_NOTES.md); the inferred ones are settings
or detected, never assumed:
- Netia is one Crisp plugin: one token (`Authorization: Basic identifier:key` + `X-Crisp-Tier: plugin`), one
  hook URL, one signing secret. Hooks are `{"website_id","event","data","timestamp"}`, signed with
  hex HMAC-SHA256 over `[X-Crisp-Request-Timestamp;raw body]`; the timestamp's unit is unknown, so no
  replay window is enforced (a replayed event is deduplicated on its fingerprint anyway).
- Every answer is `{"error","reason","data"}`; only the HTTP status is trusted (the `reason` strings are not
  documented). 429 and 420 mean the plugin's daily quota is spent: callers back off (`quota_backoff_*`).
- Whether Crisp keeps a fingerprint the plugin sends, and whether it echoes the plugin's own message back as
  `message:received`, is unknown. Netia sends a fingerprint from a range far above Crisp's own (which look like
  millisecond timestamps x 100 in every example), so an echo is recognised either way: by that range, by the fingerprint
  Crisp returned (stored as the message's external id), by our origin when CRISP_MESSAGE_ORIGIN is the
  plugin's URN, or (services) as the content of a reply being sent at that moment.
The client never retries by itself: Celery tasks retry with backoff, using `CrispError.retryable`.

Over ~400 lines on purpose, like webhooks/papercups.py: the whole Crisp protocol (hooks, REST client, quota,
adapter, chatbox) is kept in the one module the rest of Netia goes through.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from chat.models import Conversation, Message
from chat.selectors import bot_configuration_get
from netia.errors import ValidationFailed
from netia.metrics import CHANNEL_QUOTA_LIMITED
from tenants.models import Tenant
from webhooks import transport
from webhooks.channels import (
    Author,
    ConversationState,
    DeliveryFailed,
    InboundMessage,
    OutboundMessage,
    RemoteConversation,
)
from webhooks.models import CrispConnection

MESSAGE_SEND = "message:send"  # from the visitor
MESSAGE_RECEIVED = "message:received"  # from an operator (or our own echo)
SET_STATE = "session:set_state"
SET_ROUTING = "session:set_routing"
SET_EMAIL = "session:set_email"
SET_PHONE = "session:set_phone"
SET_NICKNAME = "session:set_nickname"
SUBSCRIPTION_UPDATED = "plugin:subscription:updated"
KNOWN_EVENTS = frozenset(
    {MESSAGE_SEND, MESSAGE_RECEIVED, SET_STATE, SET_ROUTING, SET_EMAIL, SET_PHONE, SET_NICKNAME, SUBSCRIPTION_UPDATED}
)
STATES = ("pending", "unresolved", "resolved")
SIGNATURE_HEADER = "X-Crisp-Signature"
TIMESTAMP_HEADER = "X-Crisp-Request-Timestamp"
# Fingerprints Netia chooses: 2^52 + 48 bits of the message's id. Crisp's own look like ms timestamps x 100 plus
# two digits (~1.7e14, inferred from the examples): far below. Under 2^53, so JavaScript keeps them exact.
OWN_FINGERPRINT_BASE = 1 << 52
_OWN_FINGERPRINT_END = OWN_FINGERPRINT_BASE + (1 << 48)
_AUTO_NICKNAME = re.compile(r"^visitor\d*$", re.IGNORECASE)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_QUOTA_UNTIL = "netia:crisp:quota:until"
_QUOTA_STRIKES = "netia:crisp:quota:strikes"


# --- Errors -------------------------------------------------------------------------------------------------------
class MalformedHook(ValidationFailed):
    code = "malformed"
    default_message = 'Expected a Crisp hook: {"website_id", "event", "data", "timestamp"}.'


class CrispError(Exception):
    """A failed call to Crisp. `problem` is a stable code; `retryable` says whether trying later may help."""

    def __init__(
        self,
        message: str,
        *,
        problem: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.problem = problem
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


# --- Hooks in -----------------------------------------------------------------------------------------------------
def signature_valid(*, secret: str, timestamp: str, raw_body: bytes, signature: str) -> bool:
    """`signature` is hex HMAC-SHA256(secret, "[timestamp;raw body]") (compared in constant time)."""
    if not (secret and timestamp and signature):
        return False
    signed = b"[" + timestamp.encode() + b";" + raw_body + b"]"
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


@dataclass(frozen=True)
class Hook:
    """A hook body (the event's `data` not validated yet)."""

    website_id: str
    event: str
    data: dict[str, Any]


def hook_parse(raw_body: bytes) -> Hook:
    """The envelope of a hook body; raises MalformedHook (400) otherwise."""
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedHook("The body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("event"), str) or not isinstance(body.get("data"), dict):
        raise MalformedHook()
    return Hook(
        website_id=website_id_clean(body.get("website_id"), field="website_id"), event=body["event"], data=body["data"]
    )


def website_id_clean(value: Any, *, field: str = "website_id", what: str = "a Crisp website id") -> str:
    """A Crisp website (or operator) id, a UUID, lower-cased; raises ValidationFailed otherwise."""
    if isinstance(value, str) and _UUID.match(value.strip()):
        return value.strip().lower()
    raise ValidationFailed(f"{field} must be {what} (a UUID).", extra={"field": field})


def _invalid(name: str, expected: str) -> ValidationFailed:
    return ValidationFailed(f"data.{name} must be {expected}.", extra={"field": f"data.{name}"})


def session_id_get(data: dict[str, Any]) -> str:
    """The event's conversation (`session_id`); at most 64 characters, the width Netia stores."""
    value = data.get("session_id")
    if not isinstance(value, str) or not value or len(value) > 64:
        raise _invalid("session_id", "a session id")
    return value


def message_key(session_id: str, fingerprint: int) -> str:
    """A Crisp message's external id: unique per (website = tenant schema, session, fingerprint)."""
    session = session_id if len(session_id) <= 46 else hashlib.sha256(session_id.encode()).hexdigest()[:40]
    return f"{fingerprint}@{session}"


def fingerprint_for(netia_message_id: uuid.UUID) -> int:
    """The fingerprint Netia sends with one of its messages (see the module docstring)."""
    return OWN_FINGERPRINT_BASE + int.from_bytes(netia_message_id.bytes[:6], "big")


def is_own_fingerprint(fingerprint: int) -> bool:
    return OWN_FINGERPRINT_BASE <= fingerprint < _OWN_FINGERPRINT_END


def _fingerprint(data: dict[str, Any]) -> int:
    value = data.get("fingerprint")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("fingerprint", "an integer")
    return value


def _moment(ms: Any) -> datetime | None:
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def message_parse(data: dict[str, Any]) -> InboundMessage:
    """A `message:send` / `message:received` (or a row of GET …/messages) as an InboundMessage.

    Visitor text is answered; an operator's note is private; an operator's text with an operator id (a UUID) is a
    human taking over; Netia's own messages (fingerprint range, our URN origin) are SELF; the rest is OTHER.
    """
    session_id = session_id_get(data)
    fingerprint = _fingerprint(data)
    kind, author, content = data.get("type"), data.get("from"), data.get("content")
    raw_user = data.get("user")
    user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
    text = content if isinstance(content, str) else ""
    origin = data.get("origin")
    ours = settings.CRISP_MESSAGE_ORIGIN
    name = ""
    if author == "user":
        role = Author.VISITOR if kind == "text" and text else Author.OTHER
        name = visitor_name(user.get("nickname"))
    elif author == "operator" and (is_own_fingerprint(fingerprint) or (ours != "chat" and origin == ours)):
        role = Author.SELF
    elif author == "operator" and kind == "note" and text:
        role = Author.AGENT
    elif author == "operator" and kind == "text" and text and data.get("automated") is not True:
        operator_id = user.get("user_id")
        role = Author.AGENT if isinstance(operator_id, str) and _UUID.match(operator_id) else Author.OTHER
    else:
        role = Author.OTHER
    return InboundMessage(
        external_id=message_key(session_id, fingerprint),
        conversation_external_id=session_id,
        author=role,
        content=text,
        private=kind == "note",
        created_at=_moment(data.get("timestamp")),
        visitor_name=name,
    )


def visitor_name(nickname: Any) -> str:
    """A visitor's nickname as a name, unless it is the one Crisp makes up ("visitor493603")."""
    if not isinstance(nickname, str) or _AUTO_NICKNAME.match(nickname.strip()):
        return ""
    return nickname.strip()[:200]


def state_get(data: dict[str, Any]) -> str:
    state = data.get("state")
    if state not in STATES:
        raise _invalid("state", "pending, unresolved or resolved")
    return str(state)


def routing_get(data: dict[str, Any]) -> str:
    """The operator the conversation is routed to ("" when unassigned); inferred to be an operator's user id."""
    routing_id = data.get("routing_id")
    if routing_id is None:
        return ""
    if not isinstance(routing_id, str) or len(routing_id) > 64:
        raise _invalid("routing_id", "a string or null")
    return routing_id


def conversation_state_parse(hook: Hook) -> ConversationState:
    """A `session:set_state` or `session:set_routing` as the part of the conversation it reports: resolved
    closes it (any other state reopens it); an operator assigned is a human taking it."""
    session_id = session_id_get(hook.data)
    if hook.event == SET_STATE:
        resolved = state_get(hook.data) == "resolved"
        return ConversationState(session_id, "", closed=resolved, assignee_external_id=None)
    routing = routing_get(hook.data)
    return ConversationState(session_id, "", closed=None, assignee_external_id=routing, assigned_to_human=bool(routing))


def text_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 500:
        raise _invalid(name, "a string")
    return value


# --- REST client --------------------------------------------------------------------------------------------------
_PROBLEMS = {400: "rejected", 401: "bad_token", 403: "not_allowed", 404: "not_found", 420: "quota", 429: "quota"}


class CrispClient:
    """Calls to Crisp's REST API with the plugin token (never logged, never in errors)."""

    def __init__(self, *, api_url: str, identifier: str, key: str, timeout: float | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self._auth = (identifier, key)
        self.timeout = settings.CRISP_TIMEOUT_SECONDS if timeout is None else timeout

    def __repr__(self) -> str:
        return f"CrispClient({self.api_url!r})"

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """The answer's `data`; raises CrispError."""
        try:
            response = transport.request(
                method,
                f"{self.api_url}{path}",
                service=f"Crisp at {self.api_url}",
                params=params,
                json=body,
                auth=self._auth,
                headers={"X-Crisp-Tier": "plugin", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except transport.Unreachable as error:
            raise CrispError(error.message, problem=error.problem, retryable=True) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        status = response.status_code
        what = f"{method} {path}"
        if status >= 400:
            reason = answer.get("reason") if isinstance(answer, dict) else None
            problem = _PROBLEMS.get(status, "server_error" if status >= 500 else "rejected")
            if problem == "quota":
                CHANNEL_QUOTA_LIMITED.labels(channel="crisp").inc()
            raise CrispError(
                f"Crisp answered {status} to {what}: {reason or response.reason or 'error'}",
                problem=problem,
                retryable=problem == "quota" or status >= 500 or status == 408,
                status=status,
                retry_after=_retry_after(response),
            )
        if not isinstance(answer, dict) or answer.get("error") is not False or "data" not in answer:
            raise CrispError(
                f"Crisp answered {what} without its {{error, reason, data}} envelope.",
                problem="unexpected_response",
                retryable=True,
                status=status,
            )
        return answer["data"]

    def _website(self, website_id: str, path: str = "") -> str:
        return f"/website/{website_id}{path}"

    def _conversation(self, website_id: str, session_id: str, path: str = "") -> str:
        return self._website(website_id, f"/conversation/{session_id}{path}")

    def plugin_id(self) -> str:
        """GET plugin/connect/account: the plugin this token belongs to."""
        data = self._request("GET", "/plugin/connect/account")
        if not isinstance(data, dict) or not isinstance(data.get("plugin_id"), str):
            raise CrispError("Crisp answered without a plugin_id.", problem="unexpected_response", retryable=False)
        return str(data["plugin_id"])

    def websites_page(self, page: int) -> list[str]:
        """GET plugin/connect/websites/all/{page}: ids of the websites that installed the plugin."""
        rows = self._request("GET", f"/plugin/connect/websites/all/{page}", params={"filter_configured": 0})
        if not isinstance(rows, list):
            raise CrispError("Crisp listed websites without a list.", problem="unexpected_response", retryable=True)
        return [str(row["website_id"]).lower() for row in rows if isinstance(row, dict) and row.get("website_id")]

    def operators(self, website_id: str) -> list[str]:
        """GET website/{id}/operators/list: the operators' user ids."""
        rows = self._request("GET", self._website(website_id, "/operators/list"))
        ids = []
        for row in rows if isinstance(rows, list) else []:
            details = row.get("details") if isinstance(row, dict) else None
            if isinstance(details, dict) and isinstance(details.get("user_id"), str):
                ids.append(details["user_id"].lower())
        return ids

    def message_send(self, website_id: str, session_id: str, body: dict[str, Any]) -> int:
        """POST …/message; returns the fingerprint Crisp gave it."""
        data = self._request("POST", self._conversation(website_id, session_id, "/message"), body=body)
        fingerprint = data.get("fingerprint") if isinstance(data, dict) else None
        if isinstance(fingerprint, bool) or not isinstance(fingerprint, int):
            raise CrispError(
                "Crisp answered a message without its fingerprint.", problem="unexpected_response", retryable=True
            )
        return fingerprint

    def message_exists(self, website_id: str, session_id: str, fingerprint: int) -> bool:
        """GET …/message/{fingerprint}: whether Crisp has it."""
        try:
            self._request("GET", self._conversation(website_id, session_id, f"/message/{fingerprint}"))
        except CrispError as error:
            if error.status == 404:
                return False
            raise
        return True

    def messages(self, website_id: str, session_id: str, *, after_ms: int | None = None) -> list[dict[str, Any]]:
        """GET …/messages (the latest page; with `after_ms`, the page after that instant, oldest first)."""
        params = {"timestamp_after": after_ms} if after_ms is not None else None
        rows = self._request("GET", self._conversation(website_id, session_id, "/messages"), params=params)
        if not isinstance(rows, list):
            raise CrispError("Crisp listed messages without a list.", problem="unexpected_response", retryable=True)
        return [row for row in rows if isinstance(row, dict)]

    def conversations_page(self, website_id: str, page: int, *, per_page: int) -> list[dict[str, Any]]:
        """GET website/{id}/conversations/{page}, most recently updated first."""
        params = {"per_page": per_page, "order_date_updated": 1}
        rows = self._request("GET", self._website(website_id, f"/conversations/{page}"), params=params)
        if not isinstance(rows, list):
            raise CrispError(
                "Crisp listed conversations without a list.", problem="unexpected_response", retryable=True
            )
        return [row for row in rows if isinstance(row, dict)]

    def state_set(self, website_id: str, session_id: str, state: str) -> None:
        self._request("PATCH", self._conversation(website_id, session_id, "/state"), body={"state": state})

    def routing_assign(self, website_id: str, session_id: str, user_id: str) -> None:
        body = {"assigned": {"user_id": user_id}}
        self._request("PATCH", self._conversation(website_id, session_id, "/routing"), body=body)


def _retry_after(response: transport.Response) -> float | None:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def client() -> CrispClient:
    """The plugin's client, from CRISP_API_URL, CRISP_PLUGIN_IDENTIFIER and CRISP_PLUGIN_KEY."""
    return CrispClient(
        api_url=settings.CRISP_API_URL, identifier=settings.CRISP_PLUGIN_IDENTIFIER, key=settings.CRISP_PLUGIN_KEY
    )


def configured() -> bool:
    """Whether the operator set up the plugin (token and signing secret): the Crisp channel is off otherwise."""
    return bool(settings.CRISP_PLUGIN_IDENTIFIER and settings.CRISP_PLUGIN_KEY and settings.CRISP_SIGNING_SECRET)


def website_installed(website_id: str) -> bool:
    """Whether the website installed the plugin (plugin/connect/websites, page by page). Raises CrispError."""
    crisp = client()
    for page in range(1, settings.CRISP_WEBSITE_PAGES_MAX + 1):
        ids = crisp.websites_page(page)
        if website_id in ids:
            return True
        if not ids:
            return False
    return False


# --- The plugin's daily quota (shared by every website) ---------------------------------------------------------
def quota_backoff_until() -> datetime | None:
    """When calls that can wait (the reconciliation) may use the quota again; None when not backing off."""
    until = cache.get(_QUOTA_UNTIL)
    return until if isinstance(until, datetime) and until > timezone.now() else None


def quota_backoff_record(error: CrispError) -> float:
    """Crisp said the quota is spent: back off (Retry-After if given, else doubling from the base); seconds."""
    strikes = int(cache.get(_QUOTA_STRIKES) or 0) + 1
    wait = error.retry_after or min(
        settings.CRISP_QUOTA_BACKOFF_MAX_SECONDS, settings.CRISP_QUOTA_BACKOFF_SECONDS * 2 ** (strikes - 1)
    )
    cache.set(_QUOTA_STRIKES, strikes, timeout=24 * 3600)
    cache.set(_QUOTA_UNTIL, timezone.now() + timedelta(seconds=wait), timeout=wait)
    return float(wait)


def quota_backoff_clear() -> None:
    cache.delete_many([_QUOTA_UNTIL, _QUOTA_STRIKES])


# --- Chatbox ------------------------------------------------------------------------------------------------------
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def widget_snippet(*, website_id: str, locale: str) -> str:
    """The chatbox loader for the site's pages (Crisp's documented snippet, with the runtime locale)."""
    runtime = json.dumps({"locale": locale}).translate(_SCRIPT_ESCAPES)
    return (
        "<script>\n"
        f"window.$crisp = [];\nwindow.CRISP_WEBSITE_ID = {json.dumps(website_id)};\n"
        f"window.CRISP_RUNTIME_CONFIG = {runtime};\n"
        '(function () { var d = document, s = d.createElement("script"); s.src = "https://client.crisp.chat/l.js";'
        ' s.async = 1; d.getElementsByTagName("head")[0].appendChild(s); })();\n'
        "</script>\n"
    )


# --- The channel adapter ------------------------------------------------------------------------------------------
def _delivery_failed(error: CrispError) -> DeliveryFailed:
    if error.problem == "quota":
        quota_backoff_record(error)
    return DeliveryFailed(error.message, retryable=error.retryable, status=error.status)


class CrispAdapter:
    """ChannelAdapter for one tenant's Crisp website (caller in the tenant's schema: it reads the bot's name)."""

    channel: str = Conversation.Channel.CRISP.value

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.connection = CrispConnection.objects.filter(tenant=tenant).first()
        self.client = client()

    def _website_id(self) -> str:
        if not configured():
            raise DeliveryFailed("The Crisp plugin is not configured (CRISP_PLUGIN_* settings).", retryable=False)
        if self.connection is None:
            raise DeliveryFailed("No Crisp website is connected for this tenant.", retryable=False)
        return self.connection.website_id

    def _body(self, message: OutboundMessage) -> dict[str, Any]:
        """The message as the bot (nickname and avatar from the bot configuration); notes go as `type: note`."""
        bot = bot_configuration_get()
        user = {"type": "participant", "nickname": bot.bot_name}
        if bot.avatar_url:
            user["avatar"] = bot.avatar_url
        return {
            "type": "note" if message.private else "text",
            "from": "operator",
            "origin": settings.CRISP_MESSAGE_ORIGIN,
            "content": message.content,
            "user": user,
            "fingerprint": fingerprint_for(message.netia_message_id),
        }

    def send(self, message: OutboundMessage) -> str:
        website_id, session_id = self._website_id(), message.conversation_external_id
        try:
            fingerprint = self.client.message_send(website_id, session_id, self._body(message))
        except CrispError as error:
            raise _delivery_failed(error) from None
        return message_key(session_id, fingerprint)

    def find_sent(self, message: OutboundMessage) -> str | None:
        """By the fingerprint we sent; else (Crisp chose its own) the same text from the bot that no local
        message accounts for yet, in the conversation's latest messages."""
        website_id, session_id = self._website_id(), message.conversation_external_id
        ours = fingerprint_for(message.netia_message_id)
        body = self._body(message)
        try:
            if self.client.message_exists(website_id, session_id, ours):
                return message_key(session_id, ours)
            rows = self.client.messages(website_id, session_id)
        except CrispError as error:
            raise _delivery_failed(error) from None
        for row in reversed(rows):
            fingerprint = row.get("fingerprint")
            if not isinstance(fingerprint, int) or (row.get("from"), row.get("type")) != ("operator", body["type"]):
                continue
            user = row.get("user") if isinstance(row.get("user"), dict) else {}
            if row.get("content") != message.content or (user or {}).get("nickname") not in (
                None,
                body["user"]["nickname"],
            ):
                continue
            key = message_key(session_id, fingerprint)
            if not Message.objects.filter(channel=self.channel, external_id=key).exists():
                return key
        return None

    def conversation_read(self, *, conversation_external_id: str) -> RemoteConversation:
        """Before a delivery pass: our messages whose earlier attempt has no known outcome, looked up in Crisp.

        The state is not read: Crisp's signed, retried hooks (`session:set_state`, `session:set_routing`, an
        operator's message) already keep the local conversation in step, and every read would spend the
        plugin's daily quota. So the state reported here says nothing new (closed and assignee unknown).
        """
        state = ConversationState(conversation_external_id, "", closed=None, assignee_external_id=None)
        unsure = Message.objects.filter(
            channel=self.channel,
            conversation__external_id=conversation_external_id,
            delivery_status=Message.Delivery.SENDING,
        )
        sent: dict[str, str] = {}
        asked = 0  # lookups made: none means the read reached nothing (the circuit must not take it as an answer)
        for message in unsure:
            outbound = OutboundMessage(
                netia_message_id=message.public_id,
                conversation_external_id=conversation_external_id,
                content=message.content,
                private=message.private,
            )
            found = self.find_sent(outbound)
            asked += 1
            if found is not None:
                sent[str(message.public_id)] = found
        return RemoteConversation(state=state, sent=sent, reached=bool(asked))

    def hand_off(self, *, conversation_external_id: str) -> None:
        """Mark the conversation unresolved (it waits for the team) and route it to the chosen operator, if any."""
        website_id = self._website_id()
        try:
            self.client.state_set(website_id, conversation_external_id, "unresolved")
            operator = self.connection.handoff_operator_id if self.connection else ""
            if operator:
                self.client.routing_assign(website_id, conversation_external_id, operator)
        except CrispError as error:
            raise _delivery_failed(error) from None

    def recent_messages(self, *, since: datetime) -> list[InboundMessage]:
        """Messages of the conversations updated since `since`, skipping those unchanged since the last pass.

        Costs one request per page of conversations plus one per changed conversation, against a daily quota
        shared by every website: while Crisp says it is spent, nothing is asked (DeliveryFailed, retryable).
        """
        website_id = self._website_id()
        until = quota_backoff_until()
        if until is not None:
            raise DeliveryFailed(
                f"Crisp's plugin quota is spent: the reconciliation waits until {until.isoformat()}.",
                retryable=True,
                status=429,
            )
        since_ms = int(since.timestamp() * 1000)
        found: list[InboundMessage] = []
        seen: dict[str, Any] = {}
        try:
            for conversation in self._conversations_since(website_id, since_ms):
                session_id, updated = conversation["session_id"], conversation.get("updated_at")
                cursor = f"netia:crisp:seen:{website_id}:{session_id}"
                if updated is not None and cache.get(cursor) == updated:
                    continue
                found.extend(self._messages_since(website_id, session_id, since_ms, updated))
                seen[cursor] = updated
        except CrispError as error:
            raise _delivery_failed(error) from None
        quota_backoff_clear()
        own = set(
            Message.objects.filter(
                channel=self.channel, role=Message.Role.BOT, external_id__in=[m.external_id for m in found]
            ).values_list("external_id", flat=True)
        )
        found = [replace(m, author=Author.SELF) if m.external_id in own else m for m in found]
        cache.set_many(seen, timeout=int(settings.PAPERCUPS_RECONCILE_WINDOW_SECONDS))
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(found, key=lambda m: m.created_at or epoch)

    def _conversations_since(self, website_id: str, since_ms: int) -> Iterator[dict[str, Any]]:
        per_page = 50
        for page in range(1, settings.CRISP_RECONCILE_PAGES_MAX + 1):
            rows = self.client.conversations_page(website_id, page, per_page=per_page)
            for row in rows:
                updated = row.get("updated_at")
                if isinstance(updated, int) and updated < since_ms:
                    return
                if isinstance(row.get("session_id"), str):
                    yield row
            if len(rows) < per_page:
                return

    def _messages_since(self, website_id: str, session_id: str, since_ms: int, updated: Any) -> list[InboundMessage]:
        messages: list[InboundMessage] = []
        after = since_ms - 1
        for _ in range(settings.CRISP_RECONCILE_PAGES_MAX):
            rows = self.client.messages(website_id, session_id, after_ms=after)
            stamps = [row["timestamp"] for row in rows if isinstance(row.get("timestamp"), int)]
            for row in rows:
                try:
                    messages.append(message_parse({**row, "session_id": session_id}))
                except ValidationFailed:
                    continue
            if not stamps or max(stamps) <= after or (isinstance(updated, int) and max(stamps) >= updated):
                break
            after = max(stamps)
        return messages
