"""Webhook events in (Papercups, Crisp). A request authenticates, checks the event and stores it raw, once
(`events`); the worker then parses it: conversations and messages stored once (keyed on the channel's ids),
the bot's turn queued.

No outbound call and no LLM anywhere here; the request itself runs one INSERT (plus the tenant lookup when
it is not cached) and one publish.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import datetime

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat.leads import ContactInfo, extract_email, extract_phone
from chat.models import Conversation, Message
from chat.services import (
    conversation_contact_record,
    conversation_get_or_create,
    conversation_hand_off,
    conversation_set_status,
    message_record_agent,
    message_record_visitor,
)
from netia.errors import AuthenticationFailed, NotFound, PermissionDenied, ServiceUnavailable
from tenants.models import Tenant
from webhooks import crisp, papercups
from webhooks.channels import Author, ConversationState, InboundMessage
from webhooks.models import CrispConnection, InboundEvent
from webhooks.selectors import (
    SIGNATURE_WINDOW_SECONDS,
    TIMESTAMP_HEADER,
    WebhookCredentials,
    tenant_find_by_webhook_credentials,
    tenant_get_by_papercups_account,
)
from webhooks.services.events import inbound_event_store, processor_register
from webhooks.services.queueing import refresh_queue, reply_queue

logger = structlog.get_logger(__name__)
CRISP = Conversation.Channel.CRISP.value
# Conversation.metadata key: the id of the last channel conversation event applied (see channel_conversation_sync).
SEQUENCE_KEY = "channel_event_sequence"


class CrispNotConfigured(ServiceUnavailable):
    code = "crisp_not_configured"
    default_message = "The Crisp channel is not set up on this Netia deployment."


class Outcome:
    """What a webhook event did (the response's `status` and the metric's `outcome`)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def _require_fresh(credentials: WebhookCredentials) -> None:
    if not credentials.signature_fresh:
        raise AuthenticationFailed(
            f"Send {TIMESTAMP_HEADER} (Unix seconds, within {SIGNATURE_WINDOW_SECONDS} s of now) with the signature.",
            extra={"reason": "signature_expired"},
        )


def papercups_webhook_verify(*, envelope: papercups.Envelope, credentials: WebhookCredentials) -> str:
    """The challenge to echo, if the credentials are some tenant's webhook secret (the payload names no account,
    so the `?token=` must be there: the tenant is found by its fingerprint)."""
    challenge = papercups.challenge_get(envelope)
    _require_fresh(credentials)
    if not credentials.token:
        raise AuthenticationFailed("webhook:verify needs the webhook URL's ?token=.")
    if tenant_find_by_webhook_credentials(credentials=credentials) is None:
        raise PermissionDenied("The webhook token is not valid.")
    return challenge


def papercups_webhook_receive(*, envelope: papercups.Envelope, credentials: WebhookCredentials) -> str:
    """Authenticate one Papercups event, check it, store it raw once and queue its processing; the Outcome.

    The tenant is the payload's account and must own the presented secret. A malformed event is refused
    here (400) and nothing is stored; what Netia ignores (its own echoes, system messages, unknown events)
    is acknowledged without storing. Messages are keyed on Papercups' message id; conversation events carry
    no id of their own (and Papercups never retries a webhook), so each delivery is an event of its own.
    """
    _require_fresh(credentials)
    tenant = tenant_get_by_papercups_account(account_id=papercups.account_id_get(envelope))
    if tenant is None:
        raise NotFound()
    if not credentials.match(tenant.webhook_secret):
        raise PermissionDenied("The webhook token is not valid for this account.")
    if envelope.event == papercups.MESSAGE_CREATED:
        message = papercups.message_parse(envelope.payload, bot_user_id=tenant.papercups_bot_user_id)
        if not message_is_recorded(message):
            return Outcome.IGNORED
        key = f"message:{message.external_id}"
    elif envelope.event in (papercups.CONVERSATION_CREATED, papercups.CONVERSATION_UPDATED):
        papercups.conversation_parse(envelope.payload, bot_user_id=tenant.papercups_bot_user_id)
        key = f"{envelope.event}:{uuid.uuid4().hex}"
    else:
        return Outcome.IGNORED
    stored = inbound_event_store(
        tenant=tenant,
        channel=Conversation.Channel.PAPERCUPS,
        key=key,
        event=envelope.event,
        raw_body=credentials.raw_body,
    )
    return Outcome.ACCEPTED if stored is not None else Outcome.DUPLICATE


@processor_register(Conversation.Channel.PAPERCUPS)
def papercups_event_process(tenant: Tenant, event: InboundEvent) -> str:
    """A stored Papercups event, parsed and recorded in the tenant's schema (the worker; caller in that schema)."""
    envelope = papercups.Envelope(event=event.payload["event"], payload=event.payload["payload"])
    bot_user_id = tenant.papercups_bot_user_id
    channel = Conversation.Channel.PAPERCUPS
    if envelope.event == papercups.MESSAGE_CREATED:
        message = papercups.message_parse(envelope.payload, bot_user_id=bot_user_id)
        return channel_message_receive(tenant=tenant, channel=channel, message=message)
    if envelope.event in (papercups.CONVERSATION_CREATED, papercups.CONVERSATION_UPDATED):
        state = papercups.conversation_parse(envelope.payload, bot_user_id=bot_user_id)
        return channel_conversation_changed(
            tenant=tenant, channel=channel, state=state, created=envelope.event == papercups.CONVERSATION_CREATED
        )
    return Outcome.IGNORED


def message_is_recorded(message: InboundMessage) -> bool:
    """Whether Netia keeps this message: a visitor's public, non-empty one or an agent's; not its own echoes."""
    if message.author not in (Author.VISITOR, Author.AGENT):
        return False
    return not (message.author == Author.VISITOR and (message.private or not message.content.strip()))


def message_record(*, channel: str, message: InboundMessage) -> tuple[Message | None, bool]:
    """Store a visitor's or agent's message once; echoes of our own messages and system messages are skipped."""
    if not message_is_recorded(message):
        return None, False
    with transaction.atomic():
        conversation, _ = conversation_get_or_create(
            channel=channel,
            external_id=message.conversation_external_id,
            external_customer_id=message.customer_external_id,
            visitor_name=message.visitor_name,
            visitor_email=message.visitor_email,
        )
        if message.author == Author.VISITOR:
            return message_record_visitor(
                conversation=conversation, content=message.content, external_id=message.external_id
            )
        return message_record_agent(
            conversation=conversation, content=message.content, external_id=message.external_id, private=message.private
        )


def channel_message_receive(*, tenant: Tenant, channel: str, message: InboundMessage) -> str:
    """A message the channel reported: store it once; a new visitor message queues the bot's turn.

    The turn waits PAPERCUPS_QUIET_PERIOD_SECONDS so that a burst of short messages gets one answer.
    An agent's public message hands the conversation to the humans (the engine does that).
    """
    recorded, created = message_record(channel=channel, message=message)
    if recorded is None:
        return Outcome.IGNORED
    if not created:
        return Outcome.DUPLICATE
    if recorded.role == Message.Role.VISITOR and recorded.conversation.status == Conversation.Status.BOT:
        reply_queue(
            tenant=tenant,
            conversation_id=recorded.conversation_id,
            after_message_id=recorded.pk,
            countdown=settings.PAPERCUPS_QUIET_PERIOD_SECONDS,
        )
    return Outcome.ACCEPTED


def channel_conversation_changed(*, tenant: Tenant, channel: str, state: ConversationState, created: bool) -> str:
    """The channel says a conversation was created or changed: know it locally; after a change, read it back.

    A change event is only a hint: its payload carries no version, and events arrive in any order (and
    concurrently), so an old one could reopen a closed conversation. The conversation is read from the
    channel by a task and that reading applied, unless a newer one was applied already.
    """
    conversation, new = conversation_get_or_create(
        channel=channel, external_id=state.external_id, external_customer_id=state.customer_external_id
    )
    if not created or not new:
        refresh_queue(tenant=tenant, channel=channel, conversation_external_id=conversation.external_id)
    return Outcome.ACCEPTED


@transaction.atomic
def channel_conversation_sync(
    *, channel: str, state: ConversationState, observed_at: datetime | None = None, sequence: int | None = None
) -> str:
    """Keep the local conversation in step with the channel: closed/reopened, assignee, taken by a human.

    `observed_at`: when the channel was read (a Papercups reading, see channel_conversation_changed): a
    reading older than the last one applied changes nothing, so events processed out of order or
    concurrently never put an older state over a newer one. `sequence` (a stored Crisp hook's id: arrival
    order) does the same for hooks that carry the state themselves. Unassigning (our own handoff does that) never
    gives the conversation back to the bot.
    """
    conversation, _ = conversation_get_or_create(
        channel=channel, external_id=state.external_id, external_customer_id=state.customer_external_id
    )
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if observed_at is not None:
        if conversation.channel_state_at is not None and observed_at <= conversation.channel_state_at:
            return Outcome.IGNORED
        Conversation.objects.filter(pk=conversation.pk).update(channel_state_at=observed_at)
    if sequence is not None:
        applied = conversation.metadata.get(SEQUENCE_KEY)
        if isinstance(applied, int) and sequence < applied:
            return Outcome.IGNORED
        conversation.metadata[SEQUENCE_KEY] = sequence
        conversation.save(update_fields=["metadata", "updated_at"])
    assignee = state.assignee_external_id
    if assignee is not None and conversation.assignee_external_id != assignee:
        conversation.assignee_external_id = assignee
        conversation.save(update_fields=["assignee_external_id", "updated_at"])
    if state.closed is True and conversation.status != Conversation.Status.CLOSED:
        conversation_set_status(conversation=conversation, status=Conversation.Status.CLOSED)
    elif state.closed is False and conversation.status == Conversation.Status.CLOSED:
        conversation_set_status(conversation=conversation, status=Conversation.Status.BOT)
    if state.assigned_to_human and conversation.status == Conversation.Status.BOT:
        conversation_hand_off(conversation=conversation, reason="assigned_to_agent")
    return Outcome.ACCEPTED


# --- Crisp -----------------------------------------------------------------------------------------------------
def crisp_webhook_receive(*, raw_body: bytes, timestamp: str, signature: str) -> str:
    """Verify one Crisp hook, check it, store it raw once and queue its processing; returns the Outcome.

    The tenant is the website the hook names. A website that installed the plugin without connecting to a
    tenant is ignored (200: Crisp would otherwise retry). A malformed event is refused here (400) and nothing
    is stored. Messages are keyed on their session and fingerprint; other events on a digest of the body, so a
    hook Crisp delivers again is stored once. No outbound call, no LLM, no tenant-schema write here.
    """
    if not crisp.configured():
        raise CrispNotConfigured()
    if not (timestamp and signature):
        raise AuthenticationFailed("A Crisp hook carries X-Crisp-Request-Timestamp and X-Crisp-Signature.")
    if not crisp.signature_valid(
        secret=settings.CRISP_SIGNING_SECRET, timestamp=timestamp, raw_body=raw_body, signature=signature
    ):
        raise PermissionDenied("The hook signature is not valid.")
    hook = crisp.hook_parse(raw_body)
    connection = CrispConnection.objects.select_related("tenant").filter(website_id=hook.website_id).first()
    if hook.event == crisp.SUBSCRIPTION_UPDATED:
        return _subscription_updated(connection=connection, data=hook.data)
    if connection is None or hook.event not in crisp.KNOWN_EVENTS:
        return Outcome.IGNORED
    if hook.event in (crisp.MESSAGE_SEND, crisp.MESSAGE_RECEIVED):
        message = crisp.message_parse(hook.data)
        if not message_is_recorded(message):
            return Outcome.IGNORED
        key = f"message:{message.external_id}"
    else:
        if hook.event in (crisp.SET_STATE, crisp.SET_ROUTING):
            crisp.conversation_state_parse(hook)
        elif not _crisp_contact_parse(event=hook.event, data=hook.data):
            return Outcome.IGNORED
        key = f"{hook.event}:{hashlib.sha256(raw_body).hexdigest()}"
    stored = inbound_event_store(tenant=connection.tenant, channel=CRISP, key=key, event=hook.event, raw_body=raw_body)
    return Outcome.ACCEPTED if stored is not None else Outcome.DUPLICATE


@processor_register(CRISP)
def crisp_event_process(tenant: Tenant, event: InboundEvent) -> str:
    """A stored Crisp hook, parsed and recorded in the tenant's schema (the worker; caller in that schema)."""
    hook = crisp.Hook(website_id="", event=event.payload["event"], data=event.payload["data"])
    if hook.event in (crisp.MESSAGE_SEND, crisp.MESSAGE_RECEIVED):
        message = crisp.message_parse(hook.data)
        if message.author in (Author.AGENT, Author.OTHER) and _is_own_echo(message):
            message = replace(message, author=Author.SELF)
        return channel_message_receive(tenant=tenant, channel=CRISP, message=message)
    if hook.event in (crisp.SET_STATE, crisp.SET_ROUTING):
        return channel_conversation_sync(channel=CRISP, state=crisp.conversation_state_parse(hook), sequence=event.pk)
    return _contact_record(session_id=crisp.session_id_get(hook.data), event=hook.event, data=hook.data)


def _is_own_echo(message: InboundMessage) -> bool:
    """Crisp's echo of a message Netia sent, not recognised by its fingerprint: the fingerprint Crisp returned
    is already stored, or (the echo can come before the send's answer) a bot message with that very text is
    being sent in this conversation."""
    ours = Message.objects.filter(
        channel=CRISP,
        role__in=[Message.Role.BOT, Message.Role.SYSTEM],
        conversation__external_id=message.conversation_external_id,
    )
    in_flight = Q(delivery_status=Message.Delivery.SENDING, content=message.content, private=message.private)
    return ours.filter(Q(external_id=message.external_id) | in_flight).exists()


def _subscription_updated(*, connection: CrispConnection | None, data: dict[str, object]) -> str:
    """The website installed (bound) or removed the plugin: recorded for the tenant and staff to see."""
    bound = data.get("bound")
    if connection is None or not isinstance(bound, bool):
        return Outcome.IGNORED
    CrispConnection.objects.filter(pk=connection.pk).update(plugin_installed=bound, updated_at=timezone.now())
    logger.info("crisp_plugin_subscription", tenant=connection.tenant_id, installed=bound)
    return Outcome.ACCEPTED


def _crisp_contact_parse(*, event: str, data: dict[str, object]) -> ContactInfo:
    """The visitor's email, phone or name a `session:set_*` hook reports (raises ValidationFailed if malformed)."""
    crisp.session_id_get(data)
    if event == crisp.SET_EMAIL:
        return ContactInfo(email=extract_email(crisp.text_field(data, "email")))
    if event == crisp.SET_PHONE:
        return ContactInfo(phone=extract_phone(crisp.text_field(data, "phone")))
    return ContactInfo(name=crisp.visitor_name(crisp.text_field(data, "nickname")) or None)


def _contact_record(*, session_id: str, event: str, data: dict[str, object]) -> str:
    """The visitor's email, phone or name, as Crisp reports it, for the conversation and its lead."""
    contact = _crisp_contact_parse(event=event, data=data)
    if not contact:
        return Outcome.IGNORED
    conversation, _ = conversation_get_or_create(channel=CRISP, external_id=session_id)
    conversation_contact_record(conversation=conversation, contact=contact)
    return Outcome.ACCEPTED
