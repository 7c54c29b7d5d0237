"""The audit trail: who changed a tenant (a member, Netia staff, an API key or the system), what, when, from where.

Every service that performs an audited action takes the `Actor` (and the client IP when a person is behind
it) and calls `audit_record` inside its own transaction, only when something actually changed: one event per
change, committed or rolled back with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from tenants.models import ApiKey, AuditEvent, Tenant, User

# A detail whose key contains one of these is refused: the trail must never hold a secret.
_SECRET_WORDS = ("secret", "password", "token", "hash", "credential")


@dataclass(frozen=True)
class Actor:
    """Who performs an action, as the trail records it (ids plus a readable label)."""

    kind: str
    label: str
    user_id: int | None = None
    key_id: uuid.UUID | None = None

    @classmethod
    def system(cls, label: str = "Netia") -> Actor:
        """A process acting on its own (a Stripe webhook, a scheduled job, a management command)."""
        return cls(kind=AuditEvent.ActorKind.SYSTEM, label=label)

    @classmethod
    def member(cls, user: User) -> Actor:
        """A member of the tenant acting in the portal."""
        return cls(kind=AuditEvent.ActorKind.USER, label=user.email, user_id=user.pk)

    @classmethod
    def signing_up(cls, email: str) -> Actor:
        """A person creating their business in the portal (no user exists yet)."""
        return cls(kind=AuditEvent.ActorKind.USER, label=email)

    @classmethod
    def staff(cls, user: User, *, key_id: uuid.UUID | None = None, key_label: str = "") -> Actor:
        """A Netia employee, in the staff console or the admin API (with a staff key: its id and label)."""
        label = f"{user.email} ({key_label})" if key_label else user.email
        return cls(kind=AuditEvent.ActorKind.STAFF, label=label, user_id=user.pk, key_id=key_id)

    @classmethod
    def api_key(cls, api_key: ApiKey) -> Actor:
        """A tenant's API key (its name and public prefix, never the secret)."""
        return cls(kind=AuditEvent.ActorKind.API_KEY, label=str(api_key), key_id=api_key.pk)


SYSTEM = Actor.system()


def _secret_keys(details: Any, path: str = "") -> list[str]:
    if isinstance(details, Mapping):
        found = []
        for key, value in details.items():
            name = f"{path}.{key}" if path else str(key)
            if any(word in str(key).lower() for word in _SECRET_WORDS):
                found.append(name)
            found += _secret_keys(value, name)
        return found
    if isinstance(details, list | tuple):
        return [name for index, item in enumerate(details) for name in _secret_keys(item, f"{path}[{index}]")]
    return []


def audit_record(
    *, tenant: Tenant, actor: Actor, action: str, ip: str | None = None, details: dict[str, Any] | None = None
) -> AuditEvent:
    """Record one audited change to `tenant`; call it inside the transaction that makes the change.

    Raises ValueError for an unknown action or a detail that looks like a secret (a programming error).
    """
    if action not in AuditEvent.Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    details = dict(details or {})
    leaked = _secret_keys(details)
    if leaked:
        raise ValueError(f"audit details must not hold secrets: {leaked}")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record belongs in the transaction of the change it records")
    return AuditEvent.objects.create(
        tenant=tenant,
        action=action,
        actor_kind=actor.kind,
        actor_user_id=actor.user_id,
        actor_key_id=actor.key_id,
        actor_label=actor.label[:255],
        ip=ip or None,
        details=details,
    )


def audit_actor_for_tenant(event: AuditEvent) -> tuple[str, str | None]:
    """Who did it and from which IP, as the tenant's own people see it: Netia staff stay anonymous."""
    if event.actor_kind == AuditEvent.ActorKind.STAFF:
        return "Netia staff", None
    return event.actor_label, event.ip


def audit_event_list(*, tenant: Tenant, action: str | None = None) -> QuerySet[AuditEvent]:
    """The tenant's trail, newest first, optionally one action only."""
    queryset = AuditEvent.objects.filter(tenant=tenant)
    return queryset.filter(action=action) if action else queryset
