"""The public chat API's writes: one visitor turn, answered synchronously, and the signed conversation token
that continues a conversation (callers in the tenant's schema)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db.models import Q
from django.utils.encoding import force_bytes

from billing.selectors import billing_state_cache_key, bot_access_get
from chat.models import Conversation, Message
from chat.replies import TurnResult, conversation_reply, first_turn_local, first_turn_record
from chat.selectors import (
    bot_configuration_cache_key,
    bot_configuration_get,
    conversation_get_by_token,
    conversation_token_salt,
)
from chat.services import message_record_visitor
from netia.db import insert_unless_conflict, unsaved
from netia.errors import Conflict, PaymentRequired, ValidationFailed
from netia.fields import max_length
from netia.versioned_cache import Prefetched, prefetch_keys
from tenants.models import Tenant


class ConversationTokenInvalid(ValidationFailed):
    code = "conversation_token_invalid"
    default_message = "The conversation token is not valid (forged, expired, or for another conversation)."


class ConversationExists(Conflict):
    code = "conversation_exists"
    default_message = "This session already has a conversation: continue it with its conversation_token."


def conversation_token_issue(*, tenant: Tenant, conversation: Conversation) -> str:
    """The signed token a chat API visitor continues the conversation with (chat.selectors reads it).

    Character for character `signing.dumps(str(conversation.public_id), salt=...)` (a TimestampSigner's token:
    the JSON string in URL-safe base64, the time in base 62, the HMAC-SHA256 under the key Django derives from
    the salt and SECRET_KEY), without building a signer, a JSON encoder and the derived key on every call.
    """
    # A UUID's text needs no JSON escaping: its JSON is the text in quotes.
    payload = base64.urlsafe_b64encode(f'"{conversation.public_id}"'.encode()).rstrip(b"=").decode()
    value = f"{payload}:{signing.b62_encode(int(time.time()))}"
    key = _signing_key(settings.SECRET_KEY, conversation_token_salt(tenant=tenant))
    signature = base64.urlsafe_b64encode(hmac.digest(key, value.encode(), "sha256")).rstrip(b"=").decode()
    return f"{value}:{signature}"


_SIGNING_KEYS: dict[tuple[str, str], bytes] = {}


def _signing_key(secret: str, salt: str) -> bytes:
    """The HMAC key `signing.Signer(key=secret, salt=salt)` signs with (django.utils.crypto.salted_hmac's)."""
    key = _SIGNING_KEYS.get((secret, salt))
    if key is None:
        if len(_SIGNING_KEYS) >= 4096:  # one per tenant this process issued tokens for
            _SIGNING_KEYS.clear()
        key = _SIGNING_KEYS[secret, salt] = hashlib.sha256(f"{salt}signer".encode() + force_bytes(secret)).digest()
    return key


def chat_api_turn_cache_keys(*, tenant: Tenant) -> list[str]:
    """The cache entries a turn reads first (billing state, bot configuration), for the caller to read in one
    round trip with its own commands and pass as `chat_api_turn`'s `prefetched` (in any schema)."""
    return prefetch_keys(
        [billing_state_cache_key(tenant=tenant), bot_configuration_cache_key(schema=tenant.schema_name)]
    )


def chat_api_turn(
    *,
    tenant: Tenant,
    text: str,
    session_id: str = "",
    conversation_token: str = "",
    visitor_name: str = "",
    visitor_email: str = "",
    prefetched: Prefetched | None = None,
) -> tuple[Message, TurnResult]:
    """One turn of the public chat API: store the visitor's message, answer it synchronously.

    A conversation is continued only with the server-issued `conversation_token` of its first turn; a
    `session_id` (or nothing: the server picks one) only creates one, so another visitor who guesses it gets
    409, never the conversation. Raises PaymentRequired, storing nothing, when the tenant's bot may not answer.
    `prefetched`: `chat_api_turn_cache_keys` as read by the caller (else read here, in one round trip).
    """
    if prefetched is None:
        keys = chat_api_turn_cache_keys(tenant=tenant)
        prefetched = Prefetched(keys, cache.get_many(keys))
    access = bot_access_get(tenant=tenant, prefetched=prefetched)
    if not access.allowed:
        raise PaymentRequired(extra={"reason": access.reason})
    created = not conversation_token
    if conversation_token:
        found = conversation_get_by_token(tenant=tenant, token=conversation_token)
        if found is None:
            raise ConversationTokenInvalid(extra={"field": "conversation_token"})
        conversation = found
    else:
        conversation = unsaved(
            Conversation,
            channel=Conversation.Channel.API,
            session_id=session_id or f"srv_{uuid.uuid4().hex}",
            visitor_name=visitor_name[: max_length(Conversation, "visitor_name")],
            visitor_email=visitor_email,
        )
        # A first turn answered with no network call: the conversation, the message and the answer in one
        # transaction. Only the LLM's answers take the two-phase path below (no transaction during the call).
        config = bot_configuration_get(prefetched=prefetched)
        local = first_turn_local(config=config, question=text, prefetched=prefetched)
        if local is not None:
            recorded = first_turn_record(
                tenant=tenant, config=config, conversation=conversation, turn=local, access=access
            )
            if recorded is None:
                raise ConversationExists(extra={"field": "session_id"})
            return recorded
        # One statement; a taken session_id inserts nothing and changes nothing on the existing conversation.
        if not insert_unless_conflict(conversation):
            raise ConversationExists(extra={"field": "session_id"})
    # The bot's reply sets the conversation's last message time: the visitor's message touches the row only
    # when no reply is coming (a human has the chat) or the chat must be reopened.
    answering = conversation.status == Conversation.Status.BOT
    message, _ = message_record_visitor(conversation=conversation, content=text, touch=not answering)
    result = conversation_reply(
        tenant=tenant, conversation_id=conversation.pk, deliver=False, access=access, first_turn=created
    )
    if result is not None:
        return message, result
    if answering:
        Conversation.objects.filter(
            Q(last_message_at__isnull=True) | Q(last_message_at__lt=message.created_at), pk=conversation.pk
        ).update(last_message_at=message.created_at)
    conversation.refresh_from_db()
    message.refresh_from_db()
    if message.answered_by is not None:
        # A concurrent request of the same session answered this message together with its own (a burst).
        answer = message.answered_by
        return message, TurnResult(
            conversation=conversation,
            visitor_messages=[message],
            reply=answer,
            intent=answer.intent,
            handoff=conversation.status == Conversation.Status.HUMAN,
            handoff_reason=conversation.handoff_reason,
            sources=answer.sources,
        )
    # A human has this conversation: the bot stays silent.
    return message, TurnResult(
        conversation=conversation,
        visitor_messages=[message],
        handoff=True,
        handoff_reason=conversation.handoff_reason,
    )
