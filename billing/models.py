"""Billing data in the public schema: usage per tenant and billing period."""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant


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
