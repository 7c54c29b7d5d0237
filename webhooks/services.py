"""Channel services: webhook events in, the outbox out, reconciliation, and the Papercups connection.

Everything below the Papercups-specific entry points works through `webhooks.channels` (records and the
ChannelAdapter protocol), so another chat provider is a new module beside `webhooks/papercups.py`.

Exactly one reply per visitor turn rests on four things:
- visitor messages are stored once, keyed on the channel's message id (`message_record_visitor`);
- `conversation_reply` answers all unanswered visitor messages under the conversation's row lock;
- a bot message is the outbox: each delivery attempt is recorded (status `sending`, attempts + 1) and
  committed before the request leaves, and an attempt whose outcome is unknown is looked up in the
  channel (by the Netia id in its metadata) before anything is sent again;
- one sender per conversation at a time (a PostgreSQL advisory lock, released if the worker dies).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from chat.selectors import bot_configuration_get
from chat.services import (
    conversation_get_or_create,
    conversation_hand_off,
    conversation_reply,
    conversation_set_status,
    message_mark_answered,
    message_record_agent,
    message_record_visitor,
)
from netia.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from netia.metrics import DELIVERIES
from netia.tenancy import current_schema
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_papercups_account
from tenants.services import papercups_webhook_url, webhook_secret_rotate
from webhooks import papercups
from webhooks.channels import (
    Author,
    ChannelAdapter,
    ConversationState,
    DeliveryFailed,
    InboundMessage,
    OutboundMessage,
)
from webhooks.models import ConnectionCheck, FailedDelivery
from webhooks.selectors import WebhookCredentials, papercups_tenants_connected, tenant_find_by_webhook_credentials

logger = structlog.get_logger(__name__)

ADAPTERS: dict[str, Callable[[Tenant], ChannelAdapter]] = {
    Conversation.Channel.PAPERCUPS.value: papercups.PapercupsAdapter,
}
# Publishing from a webhook must not outlast Papercups' ~5 s patience: one quick retry, then the sweep.
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class Outcome:
    """What a webhook event did (the response's `status` and the metric's `outcome`)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def channel_adapter_for(*, tenant: Tenant, channel: str) -> ChannelAdapter:
    """The tenant's adapter for a channel."""
    try:
        return ADAPTERS[channel](tenant)
    except KeyError:
        raise ValueError(f"no adapter for channel {channel!r}") from None


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, then a random 50-100 % of it (seconds)."""
    ceiling = min(
        settings.PAPERCUPS_RETRY_MAX_SECONDS, settings.PAPERCUPS_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1)
    )
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


# --- Queueing (always after commit, so a task never sees uncommitted rows) ------------------------------------------
def _queue_reply(*, tenant: Tenant, conversation_id: int, after_message_id: int | None, countdown: float) -> None:
    from webhooks.tasks import channel_reply

    kwargs = {"tenant_id": tenant.pk, "conversation_id": conversation_id, "after_message_id": after_message_id}
    transaction.on_commit(  # no countdown at all when 0: an ETA task would wait for the worker's timer
        lambda: channel_reply.apply_async(kwargs=kwargs, countdown=countdown or None, retry_policy=_PUBLISH_RETRY),
        robust=True,
    )


def _queue_delivery(*, tenant: Tenant, conversation_id: int) -> None:
    from webhooks.tasks import channel_deliver

    kwargs = {"tenant_id": tenant.pk, "conversation_id": conversation_id}
    transaction.on_commit(lambda: channel_deliver.apply_async(kwargs=kwargs, retry_policy=_PUBLISH_RETRY), robust=True)


# --- Webhooks in ------------------------------------------------------------------------------------------------------
def papercups_webhook_verify(*, envelope: papercups.Envelope, credentials: WebhookCredentials) -> str:
    """The challenge to echo, if the credentials are some tenant's webhook secret (the payload names no account)."""
    challenge = papercups.challenge_get(envelope)
    if tenant_find_by_webhook_credentials(credentials=credentials) is None:
        raise PermissionDenied("The webhook token is not valid.")
    return challenge


def papercups_webhook_receive(*, envelope: papercups.Envelope, credentials: WebhookCredentials) -> str:
    """Authenticate one Papercups event, store what it says and queue the reply; returns the Outcome.

    The tenant is the payload's account and must own the presented secret. No outbound call, no LLM here.
    """
    tenant = tenant_get_by_papercups_account(account_id=papercups.account_id_get(envelope))
    if tenant is None:
        raise NotFound()
    if not credentials.match(tenant.webhook_secret):
        raise PermissionDenied("The webhook token is not valid for this account.")
    bot_user_id = tenant.papercups_bot_user_id
    channel = Conversation.Channel.PAPERCUPS
    if envelope.event == papercups.MESSAGE_CREATED:
        message = papercups.message_parse(envelope.payload, bot_user_id=bot_user_id)
        with tenant_context(tenant):
            return channel_message_receive(tenant=tenant, channel=channel, message=message)
    if envelope.event in (papercups.CONVERSATION_CREATED, papercups.CONVERSATION_UPDATED):
        state = papercups.conversation_parse(envelope.payload, bot_user_id=bot_user_id)
        with tenant_context(tenant):
            return channel_conversation_sync(channel=channel, state=state)
    return Outcome.IGNORED


def _message_record(*, channel: str, message: InboundMessage) -> tuple[Message | None, bool]:
    """Store a visitor's or agent's message once; echoes of our own messages and system messages are skipped."""
    if message.author not in (Author.VISITOR, Author.AGENT):
        return None, False
    if message.author == Author.VISITOR and (message.private or not message.content.strip()):
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
    recorded, created = _message_record(channel=channel, message=message)
    if recorded is None:
        return Outcome.IGNORED
    if not created:
        return Outcome.DUPLICATE
    if recorded.role == Message.Role.VISITOR and recorded.conversation.status == Conversation.Status.BOT:
        _queue_reply(
            tenant=tenant,
            conversation_id=recorded.conversation_id,
            after_message_id=recorded.pk,
            countdown=settings.PAPERCUPS_QUIET_PERIOD_SECONDS,
        )
    return Outcome.ACCEPTED


@transaction.atomic
def channel_conversation_sync(*, channel: str, state: ConversationState) -> str:
    """Keep the local conversation in step with the channel: closed/reopened, assignee, taken by a human.

    Unassigning (our own handoff does that) never gives the conversation back to the bot.
    """
    conversation, _ = conversation_get_or_create(
        channel=channel, external_id=state.external_id, external_customer_id=state.customer_external_id
    )
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if conversation.assignee_external_id != state.assignee_external_id:
        conversation.assignee_external_id = state.assignee_external_id
        conversation.save(update_fields=["assignee_external_id", "updated_at"])
    if state.closed and conversation.status != Conversation.Status.CLOSED:
        conversation_set_status(conversation=conversation, status=Conversation.Status.CLOSED)
    elif not state.closed and conversation.status == Conversation.Status.CLOSED:
        conversation_set_status(conversation=conversation, status=Conversation.Status.BOT)
    if state.assigned_to_human and conversation.status == Conversation.Status.BOT:
        conversation_hand_off(conversation=conversation, reason="assigned_to_agent")
    return Outcome.ACCEPTED


# --- The bot's turn -------------------------------------------------------------------------------------------------
class Turn:
    """What a reply task did."""

    ANSWERED = "answered"
    NOTHING = "nothing"  # nothing unanswered, or a human has the conversation
    SUPERSEDED = "superseded"  # a newer visitor message arrived: its own task answers the whole burst


def channel_conversation_answer(
    *, tenant: Tenant, conversation_id: int, after_message_id: int | None = None, fallback: bool | None = None
) -> str:
    """The bot's turn for a channel conversation (caller in the tenant's schema); queues the delivery.

    `after_message_id`: the visitor message that queued this turn; if a newer one is waiting, its task
    answers (the quiet period restarts with each message). `fallback`: whether an LLM failure may produce
    the polite fallback reply; by default only once the oldest unanswered message has waited
    PAPERCUPS_REPLY_RETRY_SECONDS; before that conversation_reply raises ReplyUnavailable and the task retries.
    """
    unanswered = Message.objects.filter(
        conversation_id=conversation_id, role=Message.Role.VISITOR, answered_by__isnull=True
    )
    if after_message_id is not None and unanswered.filter(pk__gt=after_message_id).exists():
        return Turn.SUPERSEDED
    oldest = unanswered.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is None:
        return Turn.NOTHING
    if fallback is None:
        fallback = timezone.now() - oldest >= timedelta(seconds=settings.PAPERCUPS_REPLY_RETRY_SECONDS)
    with transaction.atomic():
        result = conversation_reply(tenant=tenant, conversation_id=conversation_id, deliver=True, fallback=fallback)
        if result is None:
            return Turn.NOTHING
        if result.handoff:
            Conversation.objects.filter(pk=conversation_id).update(handoff_sync_pending=True)
        _queue_delivery(tenant=tenant, conversation_id=conversation_id)
    return Turn.ANSWERED


# --- The outbox -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeliveryOutcome:
    """What one pass over a conversation's outbox did; `retry_in` (seconds) asks the task to come back."""

    sent: int = 0
    failed: int = 0
    retry_in: float | None = None
    busy: bool = False


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def _sender_lock(conversation_id: int) -> Iterator[bool]:
    """A session-level advisory lock: one sender per conversation; PostgreSQL drops it if the worker dies."""
    key = _lock_key(f"netia:outbox:{current_schema()}:{conversation_id}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _give_up_at(start: datetime) -> datetime:
    return start + timedelta(seconds=settings.PAPERCUPS_DELIVERY_GIVE_UP_SECONDS)


def _failure_record(
    *, tenant: Tenant, conversation: Conversation, kind: str, error: str, message: Message | None = None
) -> None:
    """Make a give-up visible to staff (public schema) and in metrics."""
    fields: dict[str, Any] = {
        "channel": conversation.channel,
        "conversation_id": conversation.pk,
        "conversation_external_id": conversation.external_id,
        "content_preview": (message.content if message else "")[:200],
        "error": error[:2000],
        "attempts": message.delivery_attempts if message else 0,
        "failed_at": timezone.now(),
        "retried_at": None,
    }
    if message is not None:
        FailedDelivery.objects.update_or_create(
            tenant=tenant, message_public_id=message.public_id, defaults={"kind": FailedDelivery.Kind.MESSAGE, **fields}
        )
    else:
        FailedDelivery.objects.update_or_create(
            tenant=tenant, conversation_id=conversation.pk, kind=FailedDelivery.Kind.HANDOFF, defaults=fields
        )
    DELIVERIES.labels(channel=conversation.channel, outcome="failed").inc()
    logger.warning(
        "channel_delivery_failed", channel=conversation.channel, conversation=conversation.pk, kind=kind, error=error
    )


def _mark_sent(*, conversation: Conversation, message: Message, external_id: str, outcome: str) -> None:
    Message.objects.filter(pk=message.pk).update(
        delivery_status=Message.Delivery.SENT, external_id=external_id, delivered_at=timezone.now(), delivery_error=""
    )
    DELIVERIES.labels(channel=conversation.channel, outcome=outcome).inc()


def _mark_failed(*, tenant: Tenant, conversation: Conversation, message: Message, error: str) -> None:
    Message.objects.filter(pk=message.pk).update(delivery_status=Message.Delivery.FAILED, delivery_error=error[:2000])
    message.refresh_from_db(fields=["delivery_attempts"])
    _failure_record(
        tenant=tenant, conversation=conversation, kind=FailedDelivery.Kind.MESSAGE, error=error, message=message
    )


def _message_deliver(
    *, tenant: Tenant, adapter: ChannelAdapter, conversation: Conversation, message: Message
) -> float | None:
    """One outbox message: sent, found already sent, or failed for good (None), or retry in N seconds."""
    outbound = OutboundMessage(
        netia_message_id=message.public_id,
        conversation_external_id=conversation.external_id,
        content=message.content,
        private=message.private,
    )
    deadline = message.delivery_deadline or _give_up_at(message.created_at)

    def attempt_failed(error: DeliveryFailed) -> float | None:
        Message.objects.filter(pk=message.pk).update(delivery_error=error.detail[:2000])
        if not error.retryable or timezone.now() >= deadline:
            reason = error.detail if not error.retryable else f"Gave up after the retry window: {error.detail}"
            _mark_failed(tenant=tenant, conversation=conversation, message=message, error=reason)
            return None
        DELIVERIES.labels(channel=conversation.channel, outcome="retry").inc()
        return retry_delay(message.delivery_attempts)

    if message.delivery_status == Message.Delivery.SENDING:
        # The last attempt's outcome is unknown (error, timeout, or a worker killed mid-send): look first.
        try:
            found = adapter.find_sent(outbound)
        except DeliveryFailed as error:
            return attempt_failed(error)
        if found:
            _mark_sent(conversation=conversation, message=message, external_id=found, outcome="already_sent")
            return None
    if timezone.now() >= deadline:
        reason = f"Gave up after the retry window: {message.delivery_error or 'never sent'}"
        _mark_failed(tenant=tenant, conversation=conversation, message=message, error=reason)
        return None
    # Record the attempt and commit it before the request leaves: a crash from here on leaves `sending`.
    Message.objects.filter(pk=message.pk).update(
        delivery_status=Message.Delivery.SENDING,
        delivery_attempts=F("delivery_attempts") + 1,
        delivery_attempted_at=timezone.now(),
    )
    message.refresh_from_db(fields=["delivery_status", "delivery_attempts"])
    try:
        external_id = adapter.send(outbound)
    except DeliveryFailed as error:
        return attempt_failed(error)
    _mark_sent(conversation=conversation, message=message, external_id=external_id, outcome="sent")
    return None


def _handoff_deliver(*, tenant: Tenant, adapter: ChannelAdapter, conversation: Conversation) -> float | None:
    """Tell the channel about the handoff once the messages are out; None when done or given up."""
    since = conversation.handed_off_at or timezone.now()
    retried = conversation.metadata.get("handoff_retry_since") if isinstance(conversation.metadata, dict) else None
    if isinstance(retried, str):
        with contextlib.suppress(ValueError):
            since = max(since, datetime.fromisoformat(retried))
    try:
        adapter.hand_off(conversation_external_id=conversation.external_id)
    except DeliveryFailed as error:
        now = timezone.now()
        if error.retryable and now < _give_up_at(since):
            DELIVERIES.labels(channel=conversation.channel, outcome="retry").inc()
            waited = (now - since).total_seconds()
            return min(settings.PAPERCUPS_RETRY_MAX_SECONDS, max(settings.PAPERCUPS_RETRY_BASE_SECONDS, waited)) * (
                random.uniform(0.5, 1.0)  # noqa: S311 - jitter
            )
        Conversation.objects.filter(pk=conversation.pk).update(handoff_sync_pending=False)
        _failure_record(tenant=tenant, conversation=conversation, kind=FailedDelivery.Kind.HANDOFF, error=error.detail)
        return None
    Conversation.objects.filter(pk=conversation.pk).update(handoff_sync_pending=False)
    DELIVERIES.labels(channel=conversation.channel, outcome="handoff").inc()
    return None


def outbox_deliver(*, tenant: Tenant, conversation_id: int) -> DeliveryOutcome:
    """Send the conversation's pending bot messages in order, then the handoff call (caller in the tenant's schema).

    Must run outside a transaction: each attempt is committed before its request is sent.
    """
    if connection.in_atomic_block:
        raise RuntimeError("outbox_deliver commits each attempt before sending: call it outside a transaction")
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return DeliveryOutcome()
    adapter = channel_adapter_for(tenant=tenant, channel=conversation.channel)
    sent = failed = 0
    with _sender_lock(conversation_id) as acquired:
        if not acquired:
            return DeliveryOutcome(busy=True, retry_in=1.0)
        outbox = Message.objects.filter(
            conversation_id=conversation_id, delivery_status__in=[Message.Delivery.PENDING, Message.Delivery.SENDING]
        ).order_by("id")
        while (message := outbox.first()) is not None:
            retry_in = _message_deliver(tenant=tenant, adapter=adapter, conversation=conversation, message=message)
            if retry_in is not None:
                return DeliveryOutcome(sent=sent, failed=failed, retry_in=retry_in)
            message.refresh_from_db(fields=["delivery_status"])
            if message.delivery_status == Message.Delivery.SENT:
                sent += 1
            else:
                failed += 1
        conversation.refresh_from_db()
        if conversation.handoff_sync_pending:
            retry_in = _handoff_deliver(tenant=tenant, adapter=adapter, conversation=conversation)
            if retry_in is not None:
                return DeliveryOutcome(sent=sent, failed=failed, retry_in=retry_in)
    return DeliveryOutcome(sent=sent, failed=failed)


def failed_delivery_retry(*, failed: FailedDelivery) -> bool:
    """Staff retry of something given up: it gets a fresh retry window and is queued again. False if gone."""
    now = timezone.now()
    with tenant_context(failed.tenant):
        if failed.kind == FailedDelivery.Kind.MESSAGE and failed.message_public_id is not None:
            queued = Message.objects.filter(
                public_id=failed.message_public_id, delivery_status=Message.Delivery.FAILED
            ).update(delivery_status=Message.Delivery.PENDING, delivery_deadline=_give_up_at(now), delivery_error="")
        else:
            conversation = Conversation.objects.filter(pk=failed.conversation_id).first()
            queued = 0
            if conversation is not None:
                conversation.metadata = {**(conversation.metadata or {}), "handoff_retry_since": now.isoformat()}
                conversation.handoff_sync_pending = True
                conversation.save(update_fields=["metadata", "handoff_sync_pending", "updated_at"])
                queued = 1
        if queued:
            _queue_delivery(tenant=failed.tenant, conversation_id=failed.conversation_id)
    FailedDelivery.objects.filter(pk=failed.pk).update(retried_at=now)
    return bool(queued)


# --- Reconciliation (Papercups drops undelivered webhooks) -----------------------------------------------------------
@dataclass(frozen=True)
class ReconcileResult:
    recorded: int
    replies_queued: int
    deliveries_queued: int
    channel_error: str = ""


def _local_message_for(item: InboundMessage, *, channel: str) -> Message | None:
    """The local bot message an echo of ours stands for (by the channel's id, else our id in its metadata)."""
    condition = Q(channel=channel, external_id=item.external_id)
    with contextlib.suppress(ValueError):
        condition |= Q(public_id=uuid.UUID(item.netia_message_id))
    return Message.objects.filter(condition, role=Message.Role.BOT).first()


def _reconcile_remote(*, channel: str, remote: list[InboundMessage]) -> tuple[int, dict[int, int]]:
    """Store the messages we never heard of, oldest first; returns (stored, {conversation: newest visitor msg}).

    A missed visitor message followed in the channel by one of our replies was answered there (that reply came
    after it): it is linked to that reply instead of being answered again.
    """
    known = set(
        Message.objects.filter(channel=channel, external_id__in=[m.external_id for m in remote]).values_list(
            "external_id", flat=True
        )
    )
    threads: dict[str, list[InboundMessage]] = {}
    for item in remote:
        threads.setdefault(item.conversation_external_id, []).append(item)
    stored = 0
    to_answer: dict[int, int] = {}
    for items in threads.values():
        for position, item in enumerate(items):
            if item.external_id in known:
                continue
            recorded, created = _message_record(channel=channel, message=item)
            if recorded is None or not created:
                continue
            stored += 1
            if recorded.role != Message.Role.VISITOR:
                continue
            later_reply = next(
                (
                    local
                    for later in items[position + 1 :]
                    if later.author == Author.SELF and (local := _local_message_for(later, channel=channel))
                ),
                None,
            )
            if later_reply is not None:
                message_mark_answered(message=recorded, answer=later_reply)
            else:
                to_answer[recorded.conversation_id] = recorded.pk
    return stored, to_answer


def channel_reconcile(*, tenant: Tenant, channel: str = Conversation.Channel.PAPERCUPS) -> ReconcileResult:
    """Catch up on what webhooks missed and on work whose task was lost (caller in the tenant's schema).

    1. Messages of the last PAPERCUPS_RECONCILE_WINDOW_SECONDS that the channel has and we do not are stored
       (idempotently, as the webhook would) and new visitor turns answered, once.
    2. Sweep: unanswered visitor turns, undelivered outbox messages and handoff calls older than
       PAPERCUPS_SWEEP_GRACE_SECONDS that no task is taking care of are queued again.
    """
    now = timezone.now()
    window = timedelta(seconds=settings.PAPERCUPS_RECONCILE_WINDOW_SECONDS)
    channel_error = ""
    try:
        remote = channel_adapter_for(tenant=tenant, channel=channel).recent_messages(since=now - window)
    except DeliveryFailed as error:
        remote, channel_error = [], error.detail
        logger.warning("channel_reconcile_unavailable", channel=channel, error=error.detail)
    stored, to_answer = _reconcile_remote(channel=channel, remote=remote)

    grace = timedelta(seconds=settings.PAPERCUPS_SWEEP_GRACE_SECONDS)
    stale_turns = Message.objects.filter(
        channel=channel,
        role=Message.Role.VISITOR,
        answered_by__isnull=True,
        conversation__status=Conversation.Status.BOT,
        created_at__lt=now - grace,
        created_at__gte=now - window,
    ).values_list("conversation_id", flat=True)
    for conversation_id in stale_turns.distinct():
        to_answer.setdefault(conversation_id, 0)
    replies = 0
    for conversation_id, newest in to_answer.items():
        if Conversation.objects.filter(pk=conversation_id, status=Conversation.Status.BOT).exists():
            _queue_reply(
                tenant=tenant,
                conversation_id=conversation_id,
                after_message_id=newest or None,
                countdown=settings.PAPERCUPS_QUIET_PERIOD_SECONDS if newest else 0,
            )
            replies += 1

    stalled = now - grace - timedelta(seconds=settings.PAPERCUPS_RETRY_MAX_SECONDS)
    stuck = set(
        Message.objects.filter(
            channel=channel, delivery_status__in=[Message.Delivery.PENDING, Message.Delivery.SENDING]
        )
        .filter(
            Q(delivery_attempted_at__isnull=True, created_at__lt=now - grace) | Q(delivery_attempted_at__lt=stalled)
        )
        .values_list("conversation_id", flat=True)
    )
    stuck |= set(
        Conversation.objects.filter(channel=channel, handoff_sync_pending=True, updated_at__lt=stalled).values_list(
            "pk", flat=True
        )
    )
    for conversation_id in stuck:
        _queue_delivery(tenant=tenant, conversation_id=conversation_id)
    return ReconcileResult(
        recorded=stored, replies_queued=replies, deliveries_queued=len(stuck), channel_error=channel_error
    )


def channel_reconcile_all() -> int:
    """Queue a reconciliation for every connected tenant (the beat job); returns how many."""
    from webhooks.tasks import channel_reconcile_tenant

    count = 0
    for tenant_id in papercups_tenants_connected().values_list("pk", flat=True):
        channel_reconcile_tenant.apply_async(kwargs={"tenant_id": tenant_id}, retry_policy=_PUBLISH_RETRY)
        count += 1
    return count


# --- Papercups connection (tenant setup) ---------------------------------------------------------------------------
class PapercupsConnectionFailed(ValidationFailed):
    code = "papercups_connection_failed"
    default_message = "Papercups refused or could not be reached."


@dataclass(frozen=True)
class _Probe:
    me: papercups.Me | None
    problem: str
    detail: str


def _probe(*, base_url: str, api_key: str, account_id: str) -> _Probe:
    """Call GET /api/v1/me and say plainly what is wrong, if anything."""
    try:
        me = papercups.PapercupsClient(base_url=base_url, api_key=api_key).me()
    except papercups.PapercupsError as error:
        explanations = {
            "bad_key": "Papercups rejected the API key (401). Create a personal API key in Papercups "
            "(Integrations, API keys) and save it again.",
            "not_found": f"{base_url}/api/v1/me does not exist (404): is {base_url} the address of a Papercups server?",
        }
        return _Probe(None, error.problem, explanations.get(error.problem, error.message))
    if me.account_id != account_id:
        return _Probe(
            me, "wrong_account", f"The API key belongs to Papercups account {me.account_id}, not to {account_id}."
        )
    return _Probe(me, "", f"Connected as {me.email or 'user'} (Papercups user {me.id}).")


def _check_record(*, tenant: Tenant, probe: _Probe) -> ConnectionCheck:
    check, _ = ConnectionCheck.objects.update_or_create(
        tenant=tenant,
        defaults={
            "ok": not probe.problem,
            "problem": probe.problem,
            "detail": probe.detail,
            "bot_user_id": probe.me.id if probe.me else None,
            "checked_at": timezone.now(),
        },
    )
    return check


def papercups_connection_set(*, tenant: Tenant, account_id: str, api_key: str, base_url: str = "") -> ConnectionCheck:
    """Connect the tenant to a Papercups account: stored only if GET /api/v1/me accepts the key for that account.

    The API key is stored encrypted and never returned; the bot user id comes from /me.
    """
    try:
        account = str(uuid.UUID(str(account_id)))
    except ValueError:
        raise ValidationFailed("The Papercups account id must be a UUID.", extra={"field": "account_id"}) from None
    api_key = api_key.strip()
    if not api_key:
        raise ValidationFailed("The personal API key is required.", extra={"field": "api_key"})
    base_url = base_url.strip().rstrip("/")
    if base_url:
        try:
            URLValidator(schemes=["http", "https"])(base_url)
        except ValidationError:
            raise ValidationFailed(
                "The Papercups URL is not a valid http(s) URL.", extra={"field": "base_url"}
            ) from None
    if Tenant.objects.filter(papercups_account_id=account).exclude(pk=tenant.pk).exists():
        raise Conflict("Another Netia account is connected to this Papercups account.", extra={"field": "account_id"})
    probe = _probe(base_url=base_url or settings.PAPERCUPS_BASE_URL, api_key=api_key, account_id=account)
    if probe.problem or probe.me is None:
        raise PapercupsConnectionFailed(probe.detail, extra={"problem": probe.problem})
    with transaction.atomic():
        tenant.papercups_account_id = uuid.UUID(account)
        tenant.papercups_api_key = api_key
        tenant.papercups_base_url = base_url
        tenant.papercups_bot_user_id = probe.me.id
        fields = ["papercups_account_id", "papercups_api_key", "papercups_base_url", "papercups_bot_user_id"]
        try:
            with transaction.atomic():
                tenant.save(update_fields=[*fields, "updated_at"])
        except IntegrityError:  # the unique account id, taken concurrently
            tenant.refresh_from_db(fields=fields)
            raise Conflict("Another Netia account is connected to this Papercups account.") from None
        return _check_record(tenant=tenant, probe=probe)


def papercups_connection_check(*, tenant: Tenant) -> ConnectionCheck:
    """Check the stored connection now (GET /api/v1/me) and record the result; refreshes the bot user id."""
    if not tenant.papercups_account_id or not tenant.papercups_api_key:
        missing = "account id" if not tenant.papercups_account_id else "personal API key"
        probe = _Probe(None, "not_configured", f"No Papercups {missing} is configured yet.")
    else:
        probe = _probe(
            base_url=tenant.papercups_base_url or settings.PAPERCUPS_BASE_URL,
            api_key=tenant.papercups_api_key,
            account_id=str(tenant.papercups_account_id),
        )
    with transaction.atomic():
        if probe.me is not None and not probe.problem and probe.me.id != tenant.papercups_bot_user_id:
            tenant.papercups_bot_user_id = probe.me.id
            tenant.save(update_fields=["papercups_bot_user_id", "updated_at"])
        return _check_record(tenant=tenant, probe=probe)


def papercups_webhook_secret_rotate(*, tenant: Tenant) -> str:
    """A new webhook secret; returns the new webhook URL (the only time it is shown in full)."""
    return papercups_webhook_url(tenant=webhook_secret_rotate(tenant=tenant))


@dataclass(frozen=True)
class WidgetSnippet:
    config: dict[str, str]
    html: str


def papercups_widget_snippet(*, tenant: Tenant) -> WidgetSnippet:
    """The widget embed code for the tenant's site, from its bot configuration (title, greeting, colour)."""
    if not tenant.papercups_account_id:
        raise Conflict("Connect a Papercups account first.", extra={"reason": "not_connected"})
    base_url = tenant.papercups_base_url or settings.PAPERCUPS_BASE_URL
    with tenant_context(tenant):
        bot = bot_configuration_get()
    config = {
        "token": str(tenant.papercups_account_id),
        "title": bot.widget_title,
        "greeting": bot.greeting,
        "primaryColor": bot.primary_color,
        "baseUrl": base_url,
    }
    return WidgetSnippet(config=config, html=papercups.widget_snippet(config=config, base_url=base_url))
