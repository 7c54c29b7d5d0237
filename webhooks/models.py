"""Channel bookkeeping in the public schema, where staff see every tenant at once.

Messages live in the tenants' schemas; what staff must act on across tenants (deliveries Netia gave up on,
the state of each Papercups connection) and the raw webhook events of every channel are recorded here.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant


class PapercupsConnection(Tenant):
    """A tenant seen as a Papercups connection (the staff console's "Papercups connections" page)."""

    class Meta:
        proxy = True
        verbose_name = "Papercups connection"


class ConnectionCheck(models.Model):
    """The latest check of a tenant's Papercups connection (GET /api/v1/me with its API key)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="papercups_check")
    ok = models.BooleanField()
    problem = models.CharField(max_length=32, blank=True, help_text="Stable code of what is wrong; empty when ok.")
    detail = models.TextField(blank=True)
    bot_user_id = models.PositiveIntegerField(null=True, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.tenant}: {'ok' if self.ok else self.problem}"


class CrispConnection(models.Model):
    """A tenant's Crisp website (the tenant of every hook naming it) and the latest check of it.

    Netia is one Crisp plugin; a business installs it on its website, then connects that website here.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="crisp_connection")
    website_id = models.CharField(max_length=64, unique=True, help_text="Crisp's website id (a UUID).")
    handoff_operator_id = models.CharField(
        max_length=64, blank=True, help_text="Crisp operator (user id) a handed-off conversation is routed to."
    )
    plugin_installed = models.BooleanField(
        default=True, help_text="Per the latest check or plugin:subscription:updated hook."
    )
    check_ok = models.BooleanField(default=False)
    check_problem = models.CharField(max_length=32, blank=True, help_text="Stable code of what is wrong.")
    check_detail = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant}: Crisp website {self.website_id}"


class FailedDelivery(models.Model):
    """Something Netia gave up sending to a channel after its retry window: staff can retry it."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        HANDOFF = "handoff", "Handoff (unassign the bot, raise priority)"
        TURN = "turn", "Visitor turn the bot never managed to answer (handed to the team)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="failed_deliveries")
    channel = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Ids in the tenant's schema (Conversation.pk, Message.public_id) and the channel's conversation id.
    conversation_id = models.BigIntegerField()
    conversation_external_id = models.CharField(max_length=64)
    message_public_id = models.UUIDField(null=True, blank=True)
    content_preview = models.CharField(max_length=200, blank=True)
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=0)
    failed_at = models.DateTimeField(default=timezone.now)
    retried_at = models.DateTimeField(null=True, blank=True, help_text="When staff queued it again.")

    class Meta:
        ordering = ["-failed_at"]
        verbose_name_plural = "failed deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "message_public_id"],
                condition=Q(message_public_id__isnull=False),
                name="faileddelivery_unique_message",
            ),
            models.UniqueConstraint(
                fields=["tenant", "conversation_id"],
                condition=Q(kind="handoff"),
                name="faileddelivery_unique_handoff",
            ),
            models.UniqueConstraint(
                fields=["tenant", "conversation_id"],
                condition=Q(kind="turn"),
                name="faileddelivery_unique_turn",
            ),
        ]
        indexes = [models.Index(fields=["retried_at", "failed_at"])]

    def __str__(self) -> str:
        return f"{self.channel} {self.kind} for {self.tenant}"


class InboundEvent(models.Model):
    """A channel's webhook event as it arrived, stored once, then processed by a worker.

    The webhook request only authenticates, stores the event (one INSERT, unique on the channel and the
    event's key) and queues its processing; the worker parses it into conversations and messages in the
    tenant's schema and queues the bot's turn. Any channel uses it: `channel` names the provider and `key`
    is the provider's id of the event (Papercups: the message id; a digest of the body for events with none).
    """

    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=16)
    key = models.CharField(max_length=128, help_text="The provider's id of the event: duplicates are dropped.")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="inbound_events")
    event = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The request body as received.")
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, blank=True, help_text="What processing did (accepted, duplicate...).")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "key"], name="inboundevent_unique_key")]
        indexes = [
            models.Index(fields=["received_at"], condition=Q(processed_at__isnull=True), name="inboundevent_pending"),
            models.Index(fields=["processed_at"], condition=Q(processed_at__isnull=False), name="inboundevent_done"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} {self.key}"


class ChannelCircuit(models.Model):
    """A tenant's channel account that keeps failing: calls to it pause until `open_until` (per-tenant backoff).

    Consecutive retryable failures (unreachable, timeouts, 5xx) are counted; past a threshold the channel is
    left alone for a growing while, one probe tries it again, and a success resumes every pending delivery.
    Other tenants' channels are unaffected.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="channel_circuits")
    channel = models.CharField(max_length=16)
    failures = models.PositiveIntegerField(default=0, help_text="Retryable failures in a row.")
    open_until = models.DateTimeField(null=True, blank=True, help_text="No call to the channel before this.")
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "channel"], name="channelcircuit_unique")]

    def __str__(self) -> str:
        return f"{self.channel} of {self.tenant}: {self.failures} failures"
