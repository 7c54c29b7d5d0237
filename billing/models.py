"""Billing data in the public schema: plans (limits as data), each tenant's billing state, usage per
billing period, and the billing emails sent (once each)."""

from __future__ import annotations

from django.db import models

from netia import claims
from netia.versioned_cache import VersionedQuerySet
from tenants.models import Tenant


class Plan(models.Model):
    """What a tenant may use. Paid plans map one Stripe price; the default plan applies without a subscription.

    A limit left empty means unlimited. `billing_sync_plans` fills plans from Stripe price/product metadata.
    """

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    price = models.OneToOneField(
        "djstripe.Price",
        to_field="id",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="netia_plan",
        help_text="The Stripe price subscribing to this plan. Empty for the default (trial) plan.",
    )
    price_id: str | None  # the Stripe price id (to_field="id")
    ai_replies_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="AI replies per billing period. Empty: unlimited."
    )
    knowledge_articles_max = models.PositiveIntegerField(
        null=True, blank=True, help_text="Knowledge base articles. Empty: unlimited."
    )
    team_seats = models.PositiveIntegerField(null=True, blank=True, help_text="Portal users. Empty: unlimited.")
    llm_models = models.JSONField(
        default=list,
        blank=True,
        help_text="LLM models tenants on this plan may choose, among the platform's LLM_MODELS. "
        "Empty: only the default model (OPENAI_MODEL).",
    )
    is_default = models.BooleanField(
        default=False, help_text="Applies to tenants without a subscription (the trial). Exactly one plan."
    )
    is_active = models.BooleanField(default=True, help_text="Offered for subscription through Checkout.")
    sort_order = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Updates through the queryset invalidate the cached bot-access inputs too (billing.selectors).
    objects = VersionedQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="plan_single_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BillingAccount(models.Model):
    """A tenant's billing state. Trial fields are Netia's own; the rest is derived from Stripe on every
    subscription or invoice webhook (never edited by hand)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="billing_account")
    trial_ends_at = models.DateTimeField()
    plan = models.ForeignKey(
        Plan,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="accounts",
        help_text="The subscribed plan. Empty: the default plan.",
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_id = models.CharField(
        max_length=255, blank=True, help_text="The subscription the status derives from (live or last ended)."
    )
    stripe_status = models.CharField(max_length=32, blank=True, help_text="Stripe's status of that subscription.")
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    price_interval = models.CharField(
        max_length=8, blank=True, help_text="The subscribed price's billing interval (day, week, month, year)."
    )
    price_interval_count = models.PositiveSmallIntegerField(default=1)
    ongoing_subscriptions = models.JSONField(
        default=list,
        blank=True,
        help_text="Ids of the tenant's ongoing Stripe subscriptions at the last reconciliation (more than one is "
        "a billing error staff must resolve).",
    )
    reconciled_at = models.DateTimeField(null=True, blank=True, help_text="Last re-read of Stripe's subscriptions.")
    past_due_since = models.DateTimeField(
        null=True, blank=True, help_text="When Netia first saw the subscription past due (starts the grace period)."
    )
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = VersionedQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["trial_ends_at"])]

    def __str__(self) -> str:
        return f"Billing of {self.tenant}"


class UsagePeriod(models.Model):
    """AI replies counted for one tenant in one billing period (incremented atomically with F())."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_periods")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    ai_replies = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [models.UniqueConstraint(fields=["tenant", "period_start"], name="usage_unique_period")]

    def __str__(self) -> str:
        return f"{self.tenant} {self.period_start:%Y-%m-%d}: {self.ai_replies} AI replies"


class BillingNotification(models.Model):
    """A billing email to the tenant's owner. Unique per (tenant, kind, key): a retry, replay or race
    finds the row and sends nothing; `sent_at` is set once the mail server accepted it."""

    class Kind(models.TextChoices):
        TRIAL_ENDING = "trial_ending", "Trial ending soon"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        USAGE_WARNING = "usage_warning", "80% of the AI replies used"
        USAGE_LIMIT = "usage_limit", "AI reply limit reached"
        DUPLICATE_SUBSCRIPTIONS = "duplicate_subscriptions", "Staff alert: more than one ongoing subscription"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="billing_notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    key = models.CharField(max_length=200, help_text="What it is about: the trial end, invoice, or period and limit.")
    context = models.JSONField(default=dict, blank=True, help_text="Values shown in the email.")
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a task took it for sending.")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed attempts at sending it.")
    error = models.CharField(max_length=500, blank=True, help_text="The mail server's last refusal.")
    gave_up_at = models.DateTimeField(
        null=True, blank=True, help_text="Given up: refused for good, too many failures, or too old to send."
    )
    gave_up_reason = models.CharField(
        max_length=16, choices=claims.GiveUp.choices, blank=True, db_default="", help_text="Why it was given up."
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "key"], name="billing_notification_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.tenant}"


# Billing emails that go to Netia's staff (BILLING_STAFF_EMAILS) rather than to the tenant's owner.
STAFF_KINDS = frozenset({BillingNotification.Kind.DUPLICATE_SUBSCRIPTIONS})
