"""Tenant-schema data: bot configuration, conversations, messages, leads and the knowledge base.

Every table here exists once per tenant schema; code reaches it inside `tenant_context(tenant)`.
"""

from __future__ import annotations

import re
import uuid
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from netia import claims
from netia.versioned_cache import VersionedQuerySet


class BotConfiguration(models.Model):
    """The tenant's bot: persona, hours, intents, handoff and LLM settings. One row per tenant schema."""

    class ReplyLanguage(models.TextChoices):
        AUTO = "auto", "Answer in the visitor's language"
        FIXED = "fixed", "Always answer in the configured language"

    bot_name = models.CharField(max_length=80, default="Assistant")
    persona = models.TextField(default="a friendly, concise customer-service assistant")
    tone = models.CharField(max_length=80, default="warm and professional")
    business_facts = models.TextField(blank=True, help_text="Facts the bot may always use (address, phone...).")
    greeting = models.TextField(default="Hi! How can I help you today?")
    timezone = models.CharField(max_length=64, default="UTC")
    business_hours = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per weekday lists of ["HH:MM", "HH:MM"] ranges, e.g. {"mon": [["09:00", "17:00"]]}. '
        "Empty: always open.",
    )
    away_message = models.TextField(
        default="We're closed right now. Leave your email or phone number and we'll get back to you."
    )
    intent_keywords = models.JSONField(
        default=dict, blank=True, help_text="Per-intent keyword lists replacing the defaults for that intent."
    )
    handoff_keywords = models.JSONField(default=list, blank=True)
    handoff_message = models.TextField(default="I'm passing you to a member of our team. They will reply here shortly.")
    llm_model = models.CharField(max_length=100, default="gpt-4o-mini")
    temperature = models.FloatField(default=0.2)
    max_tokens = models.PositiveIntegerField(default=400)
    reply_language = models.CharField(max_length=16, choices=ReplyLanguage.choices, default=ReplyLanguage.AUTO)
    cite_sources = models.BooleanField(
        default=False, help_text="End replies sent through a channel (Papercups) with the titles of the articles used."
    )
    language = models.CharField(max_length=16, default="en")
    widget_title = models.CharField(max_length=120, default="Chat with us")
    avatar_url = models.URLField(blank=True, help_text="The bot's picture where the channel shows one (Crisp).")
    primary_color = models.CharField(max_length=7, default="#1890ff")
    # Bumped on every change of the configuration / of the knowledge base; both are part of the
    # response-cache key, so an edit invalidates cached answers.
    version = models.PositiveIntegerField(default=1)
    knowledge_version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    # Updates through the queryset invalidate the cached configuration too (chat.selectors).
    objects = VersionedQuerySet.as_manager()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="botconfiguration_singleton")]

    def __str__(self) -> str:
        return f"{self.bot_name} configuration"

    def clean(self) -> None:
        """Validate the JSON settings' shapes, the time zone and the LLM parameters."""
        errors: dict[str, str] = {}
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"Unknown time zone {self.timezone!r}."
        if not _valid_hours(self.business_hours):
            errors["business_hours"] = (
                'Use {"mon": [["09:00", "17:00"]], ...}: weekdays mon..sun, ranges of "HH:MM" with start < end.'
            )
        if not isinstance(self.intent_keywords, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(w, str) for w in v)
            for k, v in self.intent_keywords.items()
        ):
            errors["intent_keywords"] = "Use an object mapping intent codes to lists of keywords."
        elif "other" in self.intent_keywords:
            errors["intent_keywords"] = "The 'other' intent takes no keywords."
        if not isinstance(self.handoff_keywords, list) or not all(isinstance(w, str) for w in self.handoff_keywords):
            errors["handoff_keywords"] = "Use a list of words or phrases."
        if not 0 <= self.temperature <= 2:
            errors["temperature"] = "Use a temperature between 0 and 2."
        if not 1 <= self.max_tokens <= 4000:
            errors["max_tokens"] = "Use between 1 and 4000 tokens."
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", self.primary_color or ""):
            errors["primary_color"] = "Use a colour like #1890ff."
        if errors:
            raise ValidationError(errors)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _valid_hours(hours: object) -> bool:
    if not isinstance(hours, dict) or not set(hours) <= set(WEEKDAYS):
        return False
    for ranges in hours.values():
        if not isinstance(ranges, list):
            return False
        for pair in ranges:
            if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                return False
            try:
                start, end = time.fromisoformat(pair[0]), time.fromisoformat(pair[1])
            except ValueError:
                return False
            if start >= end:
                return False
    return True


class Conversation(models.Model):
    """A chat between a visitor and the business, on one channel."""

    class Channel(models.TextChoices):
        API = "api", "Chat API"
        PAPERCUPS = "papercups", "Papercups"
        CRISP = "crisp", "Crisp"

    class Status(models.TextChoices):
        BOT = "bot", "Bot answering"
        HUMAN = "human", "Handed to a human"
        CLOSED = "closed", "Closed"

    id = models.BigAutoField(primary_key=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    external_id = models.CharField(max_length=64, blank=True, help_text="The channel's conversation id.")
    external_customer_id = models.CharField(max_length=64, blank=True)
    session_id = models.CharField(max_length=128, blank=True, help_text="The visitor's session (chat API).")
    visitor_name = models.CharField(max_length=200, blank=True)
    visitor_email = models.EmailField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.BOT)
    handoff_reason = models.CharField(max_length=200, blank=True)
    handed_off_at = models.DateTimeField(null=True, blank=True)
    assignee_external_id = models.CharField(max_length=64, blank=True)
    handoff_sync_pending = models.BooleanField(
        default=False, help_text="The channel still has to be told about the handoff (bot unassigned, priority)."
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Set when the conversation returns to the bot (a visitor reopening it, an agent handing it back): visitor
    # messages from before, written while a human had the chat, are not the bot's to answer.
    bot_since = models.DateTimeField(null=True, blank=True)
    # When the channel's state (status, assignee) last applied here was read: an older reading, e.g. from a
    # webhook delivered late, never overwrites it.
    channel_state_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], condition=~Q(external_id=""), name="conversation_unique_external"
            ),
            models.UniqueConstraint(
                fields=["channel", "session_id"], condition=~Q(session_id=""), name="conversation_unique_session"
            ),
        ]
        indexes = [models.Index(fields=["status", "last_message_at"])]

    def __str__(self) -> str:
        return f"{self.channel} conversation {self.external_id or self.session_id or self.pk}"


class Message(models.Model):
    """One message in a conversation. Bot messages sent through a channel double as its outbox."""

    class Role(models.TextChoices):
        VISITOR = "visitor", "Visitor"
        BOT = "bot", "Bot"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Kind(models.TextChoices):
        REPLY = "reply", "Reply"
        HANDOFF_NOTICE = "handoff_notice", "Handoff notice to the visitor"
        NOTE = "note", "Private note for agents"

    class Delivery(models.TextChoices):
        NOT_APPLICABLE = "", "Not sent through a channel"
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Not sent: a human took the conversation or it was closed"

    id = models.BigAutoField(primary_key=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Indexed by (conversation, created_at) below, which also serves every lookup by conversation alone.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False)
    role = models.CharField(max_length=8, choices=Role.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REPLY)
    content = models.TextField()
    private = models.BooleanField(default=False)
    channel = models.CharField(max_length=16, choices=Conversation.Channel.choices)
    external_id = models.CharField(max_length=64, blank=True, help_text="The channel's message id.")
    # A visitor message points to the bot message that answered it (bursts share one answer).
    # Indexed only where set (message_answered_by_idx): a bot message, half of every turn's rows, never is.
    answered_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="answers_to", db_index=False
    )
    intent = models.CharField(max_length=32, blank=True)
    intent_keywords = models.JSONField(default=list, blank=True)
    sources = models.JSONField(default=list, blank=True)
    llm_model = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    from_cache = models.BooleanField(default=False)
    is_fallback = models.BooleanField(default=False, help_text="A canned reply given because the LLM failed.")
    delivery_status = models.CharField(
        max_length=8, choices=Delivery.choices, default=Delivery.NOT_APPLICABLE, blank=True
    )
    delivery_attempts = models.PositiveIntegerField(default=0)
    delivery_error = models.TextField(blank=True)
    delivery_attempted_at = models.DateTimeField(null=True, blank=True, help_text="When the last attempt started.")
    delivery_deadline = models.DateTimeField(
        null=True, blank=True, help_text="Give up sending after this; empty: created_at + the channel's retry window."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], condition=~Q(external_id=""), name="message_unique_external"
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            models.Index(fields=["delivery_status"], condition=~Q(delivery_status=""), name="message_delivery_idx"),
            models.Index(
                fields=["answered_by"], condition=Q(answered_by__isnull=False), name="message_answered_by_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class Lead(models.Model):
    """A potential customer met in a conversation: one per conversation, updated as details arrive."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        CONTACTED = "contacted", "Contacted"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="lead")
    intent = models.CharField(max_length=32, blank=True)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True, help_text="E.164")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    notes = models.TextField(blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notify_due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the owner's email about this lead became due (its first contact details), set once: the "
        "email's age counts from here, however often the lead is edited.",
    )
    notify_claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a task took the owner's email about this lead (sent once)."
    )
    notify_attempts = models.PositiveIntegerField(default=0, help_text="Failed attempts at the owner's email.")
    notify_error = models.CharField(max_length=500, blank=True, help_text="The mail server's last refusal.")
    notify_gave_up_at = models.DateTimeField(
        null=True, blank=True, help_text="The email was given up: refused for good, too many failures, or too old."
    )
    notify_gave_up_reason = models.CharField(
        max_length=16, choices=claims.GiveUp.choices, blank=True, db_default="", help_text="Why it was given up."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or f"Lead {self.pk}"

    @property
    def contact_info(self) -> dict[str, str]:
        """The contact details known, without empty fields."""
        return {k: v for k, v in (("name", self.name), ("email", self.email), ("phone", self.phone)) if v}


class KnowledgeArticle(models.Model):
    """A piece of the tenant's knowledge base the bot answers from."""

    title = models.CharField(max_length=200)
    content = models.TextField()
    source_url = models.URLField(blank=True)
    language = models.CharField(max_length=16, blank=True, help_text="Detected when indexed; picks the stemmer.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class KnowledgePassage(models.Model):
    """A retrievable chunk of an article, indexed for PostgreSQL full-text search.

    Where pgvector is installed the table also has an `embedding vector` column, managed in SQL by
    `chat.embeddings` (it is not a Django field, so the model works on servers without the extension).
    """

    article = models.ForeignKey(KnowledgeArticle, on_delete=models.CASCADE, related_name="passages")
    position = models.PositiveIntegerField()
    content = models.TextField()
    search_vector = SearchVectorField(null=True)
    embedding_model = models.CharField(max_length=100, blank=True, help_text="The model of its embedding, if any.")

    class Meta:
        ordering = ["article_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["article", "position"], name="passage_unique_position"),
        ]
        # No fast-update pending list: knowledge changes rarely and every chat turn searches it; a pending
        # list (up to 4 MB, scanned in full by every search until vacuum merges it) makes lookups slow.
        indexes = [GinIndex(fields=["search_vector"], name="passage_search_gin", fastupdate=False)]

    def __str__(self) -> str:
        return f"{self.article.title} #{self.position}"
