"""Papercups: the only module that knows its protocol (webhook payloads, the /api/v1 REST API, the widget).

Follows the wire protocol read from Papercups' source (papercups-io/papercups @ 6a6f5adc):
- webhooks are unsigned `{"event", "payload"}` POSTs, never retried; `message:created` reaches us for every
  message, private notes and our own API messages included;
- the bot writes with `Authorization: Bearer <personal API key>` on `/api/v1/*`; `user_id` and `account_id`
  of what it posts are always the key owner's;
- errors come as `{"error": {"message"}}` or Phoenix's `{"errors": {"detail"}}`.

Over ~400 lines on purpose: the whole Papercups protocol (payloads, REST client, adapter, widget) is kept in
the one module the rest of Netia goes through; split, the protocol would be spread again.

Timeouts are ours (PAPERCUPS_TIMEOUT_SECONDS); the client never retries by itself: callers (Celery tasks)
retry with backoff, using `PapercupsError.retryable` to tell transient failures from permanent ones.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.utils.html import escape

from chat.models import Conversation
from netia import outbound
from netia.errors import ValidationFailed
from netia.fields import max_length
from tenants.models import Tenant
from webhooks.channels import (
    Author,
    ConversationState,
    DeliveryFailed,
    InboundMessage,
    OutboundMessage,
    RemoteConversation,
)

VERIFY = "webhook:verify"
MESSAGE_CREATED = "message:created"
CONVERSATION_CREATED = "conversation:created"
CONVERSATION_UPDATED = "conversation:updated"
KNOWN_EVENTS = frozenset({VERIFY, MESSAGE_CREATED, CONVERSATION_CREATED, CONVERSATION_UPDATED})
# Metadata key carrying our message's public id on everything we post (finds resends, marks echoes).
NETIA_ID_KEY = "netia_message_id"
# GET /api/v1/conversations pages: Papercups' maximum page size, and how many pages one reconciliation reads.
CONVERSATION_PAGE = 50
_MAX_PAGES = 20


# --- Errors -----------------------------------------------------------------------------------------------------
class MalformedWebhook(ValidationFailed):
    code = "malformed"
    default_message = 'Expected a Papercups webhook: {"event": "...", "payload": ...}.'


class PapercupsError(Exception):
    """A failed call to Papercups. `problem` is a stable code; `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, problem: str, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problem = problem
        self.retryable = retryable
        self.status = status


# --- Connection settings a tenant gives (onboarding, the connection API): one rule each -----------------------
def account_id_clean(value: object, *, field: str) -> uuid.UUID:
    """A Papercups account id (a UUID); ValidationFailed naming `field` otherwise."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(
            f"The Papercups account id must be a UUID, got {value!r}.", extra={"field": field}
        ) from None


def base_url_clean(value: str, *, field: str) -> str:
    """A self-hosted Papercups server's http(s) address without its trailing slash; "" (the default server)
    stays ""; ValidationFailed naming `field` otherwise."""
    base_url = value.strip().rstrip("/")
    if base_url:
        try:
            URLValidator(schemes=["http", "https"])(base_url)
        except ValidationError:
            raise ValidationFailed(f"Invalid Papercups URL: {value!r}.", extra={"field": field}) from None
        # The account's ownership is verified by asking the server (GET /api/v1/me): a server the tenant
        # controls could vouch for any account id. Only the default server and the operator's allow-list count.
        if _origin(base_url) != _origin(settings.PAPERCUPS_BASE_URL) and not outbound.url_allow_listed(base_url):
            raise ValidationFailed(
                "Only the default Papercups server or one Netia's operator allowed (NETIA_OUTBOUND_ALLOWED_HOSTS) "
                "can be used.",
                extra={"field": field, "problem": "base_url_not_allowed"},
            )
        try:
            outbound.url_check(base_url)
        except outbound.OutboundError as error:
            raise ValidationFailed(
                f"The Papercups URL cannot be used: {error.message}", extra={"field": field, "problem": error.category}
            ) from None
    return base_url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


# --- Webhook payloads ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    """A webhook body: the event name and its payload (not validated yet)."""

    event: str
    payload: Any


def envelope_parse(raw_body: bytes) -> Envelope:
    """The `{"event", "payload"}` of a webhook body; raises MalformedWebhook (400) otherwise."""
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhook("The body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("event"), str) or "payload" not in body:
        raise MalformedWebhook()
    return Envelope(event=body["event"], payload=body["payload"])


def challenge_get(envelope: Envelope) -> str:
    """The verify challenge, to be echoed back exactly."""
    if not isinstance(envelope.payload, str) or not envelope.payload:
        raise MalformedWebhook("A webhook:verify payload is the challenge string.")
    return envelope.payload


def _invalid(field: str, expected: str) -> ValidationFailed:
    return ValidationFailed(f"payload.{field} must be {expected}.", extra={"field": f"payload.{field}"})


def _payload(envelope: Envelope) -> dict[str, Any]:
    if not isinstance(envelope.payload, dict):
        raise MalformedWebhook(f"A {envelope.event} payload is an object.")
    return envelope.payload


def _uuid_field(payload: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = payload.get(name)
    if value is None and not required:
        return ""
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise _invalid(name, "a UUID" if required else "a UUID or null")


def _int_field(payload: dict[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, "an integer or null")
    return value


def account_id_get(envelope: Envelope) -> str:
    """The Papercups account the event belongs to (payload.account_id)."""
    return _uuid_field(_payload(envelope), "account_id")


def _timestamp(value: Any) -> datetime | None:
    """Papercups timestamps: naive ISO (`created_at`, UTC) or ISO with `Z`."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _clean_email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 254:
        return ""
    try:
        validate_email(value)
    except ValidationError:
        return ""
    return value


def message_parse(payload: Any, *, bot_user_id: int | None) -> InboundMessage:
    """A `message:created` payload (or a row of GET /api/v1/messages) as an InboundMessage.

    Author rules (protocol §2.3): a customer message has `customer_id` and no `user_id`; a `user_id` is an
    agent, or us when it is our bot user or carries our metadata marker; anything else is ignored.
    """
    if not isinstance(payload, dict):
        raise MalformedWebhook("A message:created payload is an object.")
    message_id = _uuid_field(payload, "id")
    conversation_id = _uuid_field(payload, "conversation_id")
    customer_id = _uuid_field(payload, "customer_id", required=False)
    user_id = _int_field(payload, "user_id")
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        raise _invalid("body", "a string or null")
    private = payload.get("private", False)
    if not isinstance(private, bool):
        raise _invalid("private", "a boolean")
    metadata = payload.get("metadata")
    netia_id = str(metadata.get(NETIA_ID_KEY, "")) if isinstance(metadata, dict) else ""
    if user_id is not None:
        author = Author.SELF if (user_id == bot_user_id or netia_id) else Author.AGENT
    elif customer_id:
        author = Author.VISITOR
    else:
        author = Author.OTHER
    raw_customer = payload.get("customer")
    customer: dict[str, Any] = raw_customer if isinstance(raw_customer, dict) else {}
    raw_name = customer.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    return InboundMessage(
        external_id=message_id,
        conversation_external_id=conversation_id,
        author=author,
        content=body or "",
        private=private,
        created_at=_timestamp(payload.get("created_at")),
        customer_external_id=customer_id,
        visitor_name=name[: max_length(Conversation, "visitor_name")],
        visitor_email=_clean_email(customer.get("email")),
        netia_message_id=netia_id if author == Author.SELF else "",
    )


def conversation_parse(payload: Any, *, bot_user_id: int | None) -> ConversationState:
    """A `conversation:created` / `conversation:updated` payload (the full record, not a diff)."""
    if not isinstance(payload, dict):
        raise MalformedWebhook("A conversation payload is an object.")
    conversation_id = _uuid_field(payload, "id")
    status = payload.get("status")
    if status not in ("open", "closed"):
        raise _invalid("status", '"open" or "closed"')
    assignee = _int_field(payload, "assignee_id")
    return ConversationState(
        external_id=conversation_id,
        customer_external_id=_uuid_field(payload, "customer_id", required=False),
        closed=status == "closed",
        assignee_external_id="" if assignee is None else str(assignee),
        # Papercups assigns a conversation to the bot on its first reply: an assignee is a human only when it is
        # not the bot (unknown bot user: assignment says nothing, an agent's reply still hands off).
        assigned_to_human=assignee is not None and bot_user_id is not None and assignee != bot_user_id,
    )


# --- REST client -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Me:
    """GET /api/v1/me: the user owning the API key (the bot user)."""

    id: int
    email: str
    account_id: str
    role: str


logger = structlog.get_logger(__name__)


def _error_message(response: outbound.OutboundResponse) -> str:
    """Papercups' own words from either of its error shapes (for our logs only: never shown to tenants)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        errors = body.get("errors")
        if isinstance(errors, dict) and errors.get("detail"):
            return str(errors["detail"])[:300]
    return f"HTTP {response.status}"


_PROBLEMS = {401: "bad_key", 403: "forbidden", 404: "not_found"}


class PapercupsClient:
    """The bot's calls to one Papercups server with one personal API key (never logged, never in errors)."""

    def __init__(self, *, base_url: str, api_key: str, timeout: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = settings.PAPERCUPS_TIMEOUT_SECONDS if timeout is None else timeout

    def __repr__(self) -> str:
        return f"PapercupsClient({self.base_url!r})"

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        authorization: str | None = None,
    ) -> Any:
        """One call through the SSRF guard (netia.outbound). Errors say what happened in Netia's words; what
        the server said goes to our logs only. `authorization` replaces the Bearer API key (the dashboard API's
        session token)."""
        try:
            response = outbound.request(
                method,
                f"{self.base_url}{path}",
                params=params,
                json=body,
                headers={
                    "Authorization": authorization if authorization is not None else f"Bearer {self._api_key}",
                    "Accept": "application/json",
                },
                timeout=self.timeout,
            )
        except outbound.OutboundError as error:
            logger.warning("papercups_call_failed", base_url=self.base_url, path=path, category=error.category)
            if error.category == "timeout":
                message = f"Papercups at {self.base_url} did not answer within {self.timeout:g} s."
            elif error.category == "unreachable":
                message = f"Could not reach Papercups at {self.base_url}."
            else:
                message = f"Papercups at {self.base_url} cannot be called: {error.message}"
            raise PapercupsError(message, problem=error.category, retryable=error.retryable) from None
        status = response.status
        if status >= 400:
            retryable = status >= 500 or status in (408, 429)
            problem = _PROBLEMS.get(status, "server_error" if status >= 500 else "rejected")
            logger.warning("papercups_error_answer", status=status, path=path, said=_error_message(response))
            raise PapercupsError(
                f"Papercups answered {status} to {method} {path}.", problem=problem, retryable=retryable, status=status
            )
        try:
            return json.loads(response.content)
        except ValueError:
            raise PapercupsError(
                f"Papercups answered {method} {path} with a body that is not JSON.",
                problem="unexpected_response",
                retryable=True,
                status=status,
            ) from None

    @staticmethod
    def _data(body: Any, what: str) -> Any:
        if not isinstance(body, dict) or "data" not in body:
            raise PapercupsError(
                f"Papercups answered {what} without a data field.", problem="unexpected_response", retryable=True
            )
        return body["data"]

    def me(self) -> Me:
        """GET /api/v1/me."""
        data = self._data(self._request("GET", "/api/v1/me"), "GET /api/v1/me")
        try:
            return Me(
                id=int(data["id"]),
                email=str(data.get("email") or ""),
                account_id=str(uuid.UUID(str(data["account_id"]))),
                role=str(data.get("role") or ""),
            )
        except (KeyError, TypeError, ValueError):
            raise PapercupsError(
                "GET /api/v1/me answered without a user id and account id: is this a Papercups server?",
                problem="unexpected_response",
                retryable=False,
            ) from None

    def message_create(
        self, *, conversation_id: str, body: str, message_type: str, private: bool, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """POST /api/v1/messages; returns the created message (expanded)."""
        message = {
            "conversation_id": conversation_id,
            "body": body,
            "type": message_type,
            "source": "api",
            "private": private,
            "sent_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "metadata": metadata,
        }
        data = self._data(self._request("POST", "/api/v1/messages", body={"message": message}), "POST /messages")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise PapercupsError(
                "POST /api/v1/messages answered without a message id.", problem="unexpected_response", retryable=True
            )
        return data

    def conversation_update(self, *, conversation_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """PUT /api/v1/conversations/:id with the `conversation` wrapper; returns the conversation."""
        body = self._request("PUT", f"/api/v1/conversations/{conversation_id}", body={"conversation": changes})
        data = self._data(body, "PUT /conversations")
        return data if isinstance(data, dict) else {}

    def conversation_get(self, *, conversation_id: str) -> dict[str, Any]:
        """GET /api/v1/conversations/:id: the conversation (expanded: its messages included)."""
        data = self._data(self._request("GET", f"/api/v1/conversations/{conversation_id}"), "GET /conversations/:id")
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise PapercupsError(
                "GET /api/v1/conversations/:id answered without a conversation.",
                problem="unexpected_response",
                retryable=True,
            )
        return data

    def conversation_page(self, *, after: str | None = None, limit: int = CONVERSATION_PAGE) -> tuple[list[Any], str]:
        """One page of GET /api/v1/conversations (most recent activity first, messages included) and the
        cursor of the next page ("" after the last)."""
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        body = self._request("GET", "/api/v1/conversations", params=params)
        page = self._data(body, "GET /conversations")
        if not isinstance(page, list):
            raise PapercupsError(
                "GET /api/v1/conversations answered without a list.", problem="unexpected_response", retryable=True
            )
        cursor = body.get("next") if isinstance(body, dict) else None
        return page, cursor if isinstance(cursor, str) else ""

    def webhook_subscribe(self, *, email: str, password: str, webhook_url: str, scope: str) -> dict[str, Any]:
        """Create a webhook subscription with a scope, which only Papercups' dashboard API can: log in as a
        dashboard user (`POST /api/session`), then `POST /api/event_subscriptions` with that session's token
        (`Authorization: <token>`, no "Bearer"). Papercups runs the verify handshake before answering."""
        login = self._request(
            "POST", "/api/session", body={"user": {"email": email, "password": password}}, authorization=""
        )
        token = self._data(login, "POST /api/session").get("token") if isinstance(login, dict) else None
        if not isinstance(token, str) or not token:
            raise PapercupsError(
                "POST /api/session answered without a token.", problem="unexpected_response", retryable=False
            )
        subscription = {"webhook_url": webhook_url, "scope": scope}
        body = self._request(
            "POST", "/api/event_subscriptions", body={"event_subscription": subscription}, authorization=token
        )
        data = self._data(body, "POST /api/event_subscriptions")
        return data if isinstance(data, dict) else {}


def client_for(tenant: Tenant, *, timeout: float | None = None) -> PapercupsClient:
    """The tenant's client: its own base URL (else PAPERCUPS_BASE_URL) and personal API key."""
    return PapercupsClient(
        base_url=tenant.papercups_base_url or settings.PAPERCUPS_BASE_URL,
        api_key=tenant.papercups_api_key,
        timeout=timeout,
    )


# --- The channel adapter -------------------------------------------------------------------------------------------
def _delivery_failed(error: PapercupsError) -> DeliveryFailed:
    return DeliveryFailed(error.message, retryable=error.retryable, status=error.status)


class PapercupsAdapter:
    """ChannelAdapter for one tenant's Papercups account."""

    channel: str = Conversation.Channel.PAPERCUPS.value

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.bot_user_id = tenant.papercups_bot_user_id
        self.client = client_for(tenant)

    def _require_key(self) -> None:
        if not self.tenant.papercups_api_key:
            raise DeliveryFailed("No Papercups API key is configured for this tenant.", retryable=False)

    def send(self, message: OutboundMessage) -> str:
        """POST /api/v1/messages as the bot user; private notes go as `type: note`.

        `disable_webhook_events` keeps Papercups from echoing it to us; our id in the metadata makes the
        message findable if we do not learn the outcome of this call.
        """
        self._require_key()
        try:
            data = self.client.message_create(
                conversation_id=message.conversation_external_id,
                body=message.content,
                message_type="note" if message.private else "bot",
                private=message.private,
                metadata={"disable_webhook_events": True, NETIA_ID_KEY: str(message.netia_message_id)},
            )
        except PapercupsError as error:
            raise _delivery_failed(error) from None
        return str(data["id"])

    def conversation_read(self, *, conversation_external_id: str) -> RemoteConversation:
        """GET /api/v1/conversations/:id: who has it, whether it is closed, and which of our messages it holds.

        Works without the `conversation:updated` webhook scope (which dashboard-made webhooks never have).
        """
        self._require_key()
        try:
            data = self.client.conversation_get(conversation_id=conversation_external_id)
            state = conversation_parse(data, bot_user_id=self.bot_user_id)
        except PapercupsError as error:
            raise _delivery_failed(error) from None
        except ValidationFailed as error:
            raise DeliveryFailed(f"Papercups sent a conversation Netia cannot read: {error}", retryable=True) from None
        sent: dict[str, str] = {}
        for row in data["messages"]:
            metadata = row.get("metadata") if isinstance(row, dict) else None
            if isinstance(metadata, dict) and metadata.get(NETIA_ID_KEY) and isinstance(row.get("id"), str):
                sent[str(metadata[NETIA_ID_KEY])] = row["id"]
        return RemoteConversation(state=state, sent=sent)

    def hand_off(self, *, conversation_external_id: str) -> None:
        """Unassign the bot (its first reply made Papercups assign the conversation to it), raise priority and
        mark the conversation unread: the private note we leave counts as an agent message, which marks it
        read and would hide it from the agents exactly when a human is needed."""
        self._require_key()
        try:
            self.client.conversation_update(
                conversation_id=conversation_external_id,
                changes={"assignee_id": None, "priority": "priority", "read": False},
            )
        except PapercupsError as error:
            raise _delivery_failed(error) from None

    def recent_messages(self, *, since: datetime) -> list[InboundMessage]:
        """Messages since `since`, read from GET /api/v1/conversations page by page (newest activity first),
        stopping at the first conversation with no activity since then."""
        self._require_key()
        messages: list[tuple[datetime, int, InboundMessage]] = []
        cursor: str | None = None
        try:
            for _ in range(_MAX_PAGES):
                page, cursor = self.client.conversation_page(after=cursor)
                reached_older = self._collect(page, since=since, into=messages)
                if reached_older or not cursor or not page:
                    break
        except PapercupsError as error:
            raise _delivery_failed(error) from None
        messages.sort(key=lambda item: (item[0], item[1]))
        return [message for _, _, message in messages]

    def _collect(self, page: list[Any], *, since: datetime, into: list[tuple[datetime, int, InboundMessage]]) -> bool:
        """Add the page's messages created since `since`; True once a conversation older than that is reached."""
        for conversation in page:
            if not isinstance(conversation, dict):
                continue
            last_activity = _timestamp(conversation.get("last_activity_at"))
            if last_activity is not None and last_activity < since:
                return True
            rows = conversation.get("messages")
            for row in rows if isinstance(rows, list) else []:
                try:
                    message = message_parse(row, bot_user_id=self.bot_user_id)
                except ValidationFailed:
                    continue
                if message.created_at is not None and message.created_at >= since:
                    # Papercups lists a conversation's messages unsorted: order by time, then position.
                    into.append((message.created_at, len(into), message))
        return False


# --- Widget -------------------------------------------------------------------------------------------------------
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def widget_snippet(*, config: dict[str, str], base_url: str) -> str:
    """The `<head>` snippet: window.Papercups config and the loader served by the Papercups server."""
    lines = [f"    {key}: {json.dumps(value)}," for key, value in config.items()]
    script_src = escape(f"{base_url.rstrip('/')}/widget.js")
    return (
        "<script>\nwindow.Papercups = {\n  config: {\n"
        + "\n".join(lines).translate(_SCRIPT_ESCAPES)
        + "\n  },\n};\n</script>\n"
        + f'<script type="text/javascript" async defer src="{script_src}"></script>\n'
    )
