"""The billing account of each tenant: its free trial, created when the tenant is onboarded."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import BillingAccount
from tenants.audit import Actor, audit_record
from tenants.models import AuditEvent, Tenant


def billing_account_create(*, tenant: Tenant, now: datetime | None = None) -> BillingAccount:
    """Start a new tenant's free trial (BILLING_TRIAL_DAYS, no card); idempotent."""
    now = now or timezone.now()
    account, _ = BillingAccount.objects.get_or_create(
        tenant=tenant, defaults={"trial_ends_at": now + timedelta(days=settings.BILLING_TRIAL_DAYS)}
    )
    return account


def trial_extend(*, tenant: Tenant, until: datetime, actor: Actor, ip: str | None = None) -> BillingAccount:
    """Move the tenant's trial end (staff goodwill); reminders are keyed by the end, so a new end gets its
    own reminder. The trail records a move (nothing when the end stays)."""
    with transaction.atomic():
        account = account_for_update(tenant=tenant)
        before = account.trial_ends_at
        account.trial_ends_at = until
        account.save(update_fields=["trial_ends_at", "updated_at"])
        if before != until:
            details = {"from": before.isoformat(), "to": until.isoformat()}
            audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.TRIAL_EXTENDED, ip=ip, details=details)
    return account


def account_for_update(*, tenant: Tenant) -> BillingAccount:
    """The tenant's account, created if missing, locked until the caller's transaction ends."""
    billing_account_create(tenant=tenant)
    return BillingAccount.objects.select_for_update().get(tenant=tenant)
