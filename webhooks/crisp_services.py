"""Crisp's entry points: hooks in (verified, stored once, the turn queued) and connecting a tenant's website.

Everything after the entry points is the channels' shared machinery (`webhooks.services`): the same turn
queueing and quiet period, outbox, retries, give-up, lookup-before-resend and reconciliation as Papercups.
"""

from __future__ import annotations

from dataclasses import replace

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.leads import ContactInfo, extract_email, extract_phone
from chat.models import Conversation, Message
from chat.selectors import bot_configuration_get
from chat.services import (
    conversation_contact_record,
    conversation_get_or_create,
    conversation_hand_off,
    conversation_set_status,
)
from netia.errors import AuthenticationFailed, Conflict, PermissionDenied, ServiceUnavailable, ValidationFailed
from tenants.models import Tenant
from webhooks import crisp
from webhooks.channels import Author, InboundMessage
from webhooks.models import CrispConnection
from webhooks.selectors import CrispCheck
from webhooks.services import Outcome, WidgetSnippet, channel_message_receive

logger = structlog.get_logger(__name__)
CHANNEL = Conversation.Channel.CRISP.value


class CrispNotConfigured(ServiceUnavailable):
    code = "crisp_not_configured"
    default_message = "The Crisp channel is not set up on this Netia deployment."


class CrispConnectionFailed(ValidationFailed):
    code = "crisp_connection_failed"
    default_message = "Crisp refused or could not be reached."


def _require_configured() -> None:
    if not crisp.configured():
        raise CrispNotConfigured()


# --- Hooks in -----------------------------------------------------------------------------------------------------
def crisp_webhook_receive(*, raw_body: bytes, timestamp: str, signature: str) -> str:
    """Verify one Crisp hook, store what it says and queue the bot's turn; returns the Outcome.

    The tenant is the website the hook names. A website that installed the plugin without connecting to a
    tenant is ignored (200: Crisp would otherwise retry). No outbound call, no LLM here.
    """
    _require_configured()
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
    tenant = connection.tenant
    with tenant_context(tenant):
        if hook.event in (crisp.MESSAGE_SEND, crisp.MESSAGE_RECEIVED):
            message = crisp.message_parse(hook.data)
            if message.author in (Author.AGENT, Author.OTHER) and _is_own_echo(message):
                message = replace(message, author=Author.SELF)
            return channel_message_receive(tenant=tenant, channel=CHANNEL, message=message)
        session_id = crisp.session_id_get(hook.data)
        if hook.event == crisp.SET_STATE:
            return _conversation_mirror(session_id=session_id, state=crisp.state_get(hook.data))
        if hook.event == crisp.SET_ROUTING:
            return _conversation_mirror(session_id=session_id, routing_id=crisp.routing_get(hook.data))
        return _contact_record(session_id=session_id, event=hook.event, data=hook.data)


def _is_own_echo(message: InboundMessage) -> bool:
    """Crisp's echo of a message Netia sent, not recognised by its fingerprint: the fingerprint Crisp returned
    is already stored, or (the echo can come before the send's answer) a bot message with that very text is
    being sent in this conversation."""
    ours = Message.objects.filter(
        channel=CHANNEL,
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


@transaction.atomic
def _conversation_mirror(*, session_id: str, state: str | None = None, routing_id: str | None = None) -> str:
    """Keep the local conversation in step: resolved closes it (and reopening gives it back to the bot), a human
    operator assigned takes it from the bot. Unassigning never gives it back."""
    conversation, _ = conversation_get_or_create(channel=CHANNEL, external_id=session_id)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if routing_id is not None and conversation.assignee_external_id != routing_id:
        conversation.assignee_external_id = routing_id
        conversation.save(update_fields=["assignee_external_id", "updated_at"])
    if state == "resolved" and conversation.status != Conversation.Status.CLOSED:
        conversation_set_status(conversation=conversation, status=Conversation.Status.CLOSED)
    elif state is not None and state != "resolved" and conversation.status == Conversation.Status.CLOSED:
        conversation_set_status(conversation=conversation, status=Conversation.Status.BOT)
    if routing_id and conversation.status == Conversation.Status.BOT:
        conversation_hand_off(conversation=conversation, reason="assigned_to_agent")
    return Outcome.ACCEPTED


def _contact_record(*, session_id: str, event: str, data: dict[str, object]) -> str:
    """The visitor's email, phone or name, as Crisp reports it, for the conversation and its lead."""
    if event == crisp.SET_EMAIL:
        contact = ContactInfo(email=extract_email(crisp.text_field(data, "email")))
    elif event == crisp.SET_PHONE:
        contact = ContactInfo(phone=extract_phone(crisp.text_field(data, "phone")))
    else:
        nickname = crisp.text_field(data, "nickname").strip()
        contact = ContactInfo(name=nickname[:200] or None)
    if not contact:
        return Outcome.IGNORED
    conversation, _ = conversation_get_or_create(channel=CHANNEL, external_id=session_id)
    conversation_contact_record(conversation=conversation, contact=contact)
    return Outcome.ACCEPTED


# --- Connecting a tenant's website ----------------------------------------------------------------------------------
_EXPLANATIONS = {
    "bad_token": "Crisp refused Netia's plugin token (401): the Netia operator must check CRISP_PLUGIN_IDENTIFIER "
    "and CRISP_PLUGIN_KEY.",
    "not_allowed": "Crisp refused access (403): the plugin lacks a permission (token scopes) on this website.",
    "quota": "Crisp's daily quota for the Netia plugin is spent; try again later.",
}


def _probe(*, website_id: str, operator_id: str) -> CrispCheck:
    """Ask Crisp whether the website installed the plugin (and has the operator); say plainly what is wrong."""
    now = timezone.now()
    try:
        if not crisp.website_installed(website_id):
            return CrispCheck(
                False,
                "not_installed",
                f"The Crisp website {website_id} has not installed the Netia plugin: install it from the Crisp "
                "Marketplace (Plugins) in that website's settings, then connect again.",
                now,
            )
        if operator_id and operator_id not in crisp.client().operators(website_id):
            return CrispCheck(
                False, "unknown_operator", f"{operator_id} is not an operator of the Crisp website {website_id}.", now
            )
    except crisp.CrispError as error:
        return CrispCheck(False, error.problem, _EXPLANATIONS.get(error.problem, error.message), now)
    routed = f"; handed-off conversations go to operator {operator_id}" if operator_id else ""
    return CrispCheck(True, "", f"The Crisp website {website_id} has the Netia plugin installed{routed}.", now)


def _check_store(*, connection: CrispConnection, check: CrispCheck) -> None:
    connection.check_ok, connection.check_problem, connection.check_detail = check.ok, check.problem, check.detail
    connection.checked_at = check.checked_at
    fields = ["check_ok", "check_problem", "check_detail", "checked_at", "updated_at"]
    if check.ok or check.problem == "not_installed":
        connection.plugin_installed = check.ok
        fields.append("plugin_installed")
    connection.save(update_fields=fields)


def _operator_clean(value: str) -> str:
    value = value.strip()
    return (
        crisp.website_id_clean(value, field="handoff_operator_id", what="a Crisp operator's user id") if value else ""
    )


def crisp_connection_set(*, tenant: Tenant, website_id: str, handoff_operator_id: str = "") -> CrispConnection:
    """Connect the tenant to its Crisp website: stored only if that website installed the plugin (and has the
    chosen operator). A website belongs to one tenant."""
    _require_configured()
    website = crisp.website_id_clean(website_id)
    operator = _operator_clean(handoff_operator_id)
    taken = Conflict("Another Netia account is connected to this Crisp website.", extra={"field": "website_id"})
    if CrispConnection.objects.filter(website_id=website).exclude(tenant=tenant).exists():
        raise taken
    check = _probe(website_id=website, operator_id=operator)
    if not check.ok:
        raise CrispConnectionFailed(check.detail, extra={"problem": check.problem})
    try:
        with transaction.atomic():
            connection, _ = CrispConnection.objects.update_or_create(
                tenant=tenant, defaults={"website_id": website, "handoff_operator_id": operator}
            )
            _check_store(connection=connection, check=check)
    except IntegrityError:  # the website, connected concurrently to another tenant
        raise taken from None
    return connection


def crisp_connection_check(*, tenant: Tenant) -> CrispCheck:
    """Check the connection now and record the verdict (shown to the tenant and staff)."""
    connection = CrispConnection.objects.filter(tenant=tenant).first()
    if not crisp.configured():
        return CrispCheck(False, "not_configured", CrispNotConfigured.default_message, timezone.now())
    if connection is None:
        return CrispCheck(False, "not_connected", "No Crisp website is connected yet.", timezone.now())
    check = _probe(website_id=connection.website_id, operator_id=connection.handoff_operator_id)
    _check_store(connection=connection, check=check)
    return check


def crisp_widget_snippet(*, tenant: Tenant) -> WidgetSnippet:
    """The chatbox code for the tenant's site (its Crisp website, in the bot's language)."""
    connection = CrispConnection.objects.filter(tenant=tenant).first()
    if connection is None:
        raise Conflict("Connect a Crisp website first.", extra={"reason": "not_connected"})
    with tenant_context(tenant):
        locale = bot_configuration_get().language
    config = {"website_id": connection.website_id, "locale": locale}
    return WidgetSnippet(config=config, html=crisp.widget_snippet(website_id=connection.website_id, locale=locale))
