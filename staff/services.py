"""Writes for staff: staff API keys (created, authenticated, revoked), and the record of each look at a tenant's
conversations and leads."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from netia.errors import PermissionDenied, ValidationFailed
from staff.models import StaffApiKey
from tenants.audit import Actor, audit_record
from tenants.keys import key_authenticate, key_generate
from tenants.models import AuditEvent, Tenant, User

STAFF_KEY_SCHEME = StaffApiKey.scheme


def _require_staff(user: User) -> None:
    if not (user.is_active and user.is_staff):
        raise PermissionDenied("Only active staff users may hold a staff API key.", extra={"reason": "not_staff"})


@transaction.atomic
def staff_key_create(*, user: User, name: str = "Staff key") -> tuple[StaffApiKey, str]:
    """Create a staff API key for `user` (who must be active staff); the secret is returned once, never stored."""
    _require_staff(user)
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("The key name must be 1 to 100 characters.", extra={"field": "name"})
    new = key_generate(scheme=STAFF_KEY_SCHEME)
    key = StaffApiKey.objects.create(user=user, name=name, prefix=new.prefix, secret_hash=new.secret_hash)
    return key, new.raw


def staff_key_revoke(*, key: StaffApiKey) -> StaffApiKey:
    """Revoke a staff key; revoking twice keeps the first revocation time."""
    StaffApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db(fields=["revoked_at"])
    return key


def staff_key_authenticate(*, raw_key: str) -> StaffApiKey:
    """Resolve a presented staff key to its StaffApiKey (user loaded).

    AuthenticationFailed (401) for an unknown, malformed or revoked key; PermissionDenied (403) when its user
    is no longer active staff.
    """
    return key_authenticate(
        keys=StaffApiKey.objects.select_related("user"), raw_key=raw_key, check=lambda key: _require_staff(key.user)
    )


@transaction.atomic
def tenant_records_look_record(
    *, tenant: Tenant, actor: Actor, ip: str | None = None, conversation_id: uuid.UUID | None = None
) -> None:
    """Record in the tenant's audit trail that staff looked at its conversations and leads (or one conversation)."""
    details = {"what": "conversation", "conversation_id": str(conversation_id)} if conversation_id else {}
    audit_record(
        tenant=tenant,
        actor=actor,
        action=AuditEvent.Action.RECORDS_VIEWED,
        ip=ip,
        details=details or {"what": "conversations and leads"},
    )
