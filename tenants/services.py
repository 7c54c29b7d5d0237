"""Writes for tenants, users and API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from django_tenants.utils import schema_exists

from netia.errors import AuthenticationFailed, PermissionDenied, ValidationFailed
from netia.fields import max_length
from tenants.models import ApiKey, Domain, Membership, Tenant, User
from tenants.signals import tenant_onboarded

API_KEY_PREFIX = "nk"
# last_used_at is written at most this often per key, so authentication stays a read on the hot path.
API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)
# Input limits are the columns' own (one place for each rule).
_TENANT_NAME_MAX = max_length(Tenant, "name")
_KEY_NAME_MAX = max_length(ApiKey, "name")
_API_KEY_RE = re.compile(rf"^{API_KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,}})$")


@dataclass(frozen=True)
class OnboardingResult:
    """A new tenant with its owner and first API key; `api_key_secret` exists only here."""

    tenant: Tenant
    owner: User
    api_key: ApiKey
    api_key_secret: str


def _schema_name_for(name: str) -> str:
    slug = slugify(name).replace("-", "_")[:40].strip("_") or "tenant"
    return f"t_{slug}_{secrets.token_hex(3)}"


def _clean_onboarding_input(*, name: str, owner_email: str) -> tuple[str, str]:
    name = name.strip()
    if not name or len(name) > _TENANT_NAME_MAX:
        raise ValidationFailed(f"The tenant name must be 1 to {_TENANT_NAME_MAX} characters.", extra={"field": "name"})
    owner_email = owner_email.strip().lower()
    try:
        validate_email(owner_email)
    except ValidationError:
        raise ValidationFailed(f"Invalid email address: {owner_email!r}.", extra={"field": "email"}) from None
    return name, owner_email


@transaction.atomic
def tenant_onboard(*, name: str, owner_email: str) -> OnboardingResult:
    """Create a tenant, its schema (cloned from the template), owner, membership and first API key.

    The `tenant_onboarded` hook lets the layers above add their part in the same transaction (billing
    starts the trial); connecting a channel at onboarding is the channel's service
    (`webhooks.services.papercups_tenant_onboard`). All or nothing: PostgreSQL DDL is transactional, so a
    failure at any step rolls back the schema too.
    """
    name, owner_email = _clean_onboarding_input(name=name, owner_email=owner_email)
    tenant = Tenant(
        schema_name=_schema_name_for(name),
        name=name,
        owner_email=owner_email,
        public_token=f"ct_{secrets.token_urlsafe(24)}",
        webhook_secret=secrets.token_urlsafe(32),
    )
    tenant.save(verbosity=0)
    Domain.objects.create(
        domain=f"{tenant.schema_name.replace('_', '-')}.{settings.NETIA_TENANT_DOMAIN}", tenant=tenant, is_primary=True
    )
    owner = User.objects.filter(email=owner_email).first() or User.objects.create_user(email=owner_email)
    Membership.objects.create(user=owner, tenant=tenant, role=Membership.Role.OWNER)
    tenant_onboarded.send(sender=Tenant, tenant=tenant)
    api_key, secret = api_key_create(tenant=tenant, name="Default key")
    return OnboardingResult(tenant=tenant, owner=owner, api_key=api_key, api_key_secret=secret)


def hash_api_key(raw_key: str) -> str:
    """SHA-256 hex of a full API key (keys carry 256 bits of entropy, so no slow hash is needed)."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, tenant: Tenant, name: str, permissions: list[str] | None = None) -> tuple[ApiKey, str]:
    """Create an API key and return it with its secret, which is never stored nor shown again."""
    permissions = list(ApiKey.Permission.values) if permissions is None else permissions
    unknown = sorted(set(permissions) - set(ApiKey.Permission.values))
    if unknown:
        raise ValidationFailed("Unknown permissions.", extra={"unknown": unknown})
    name = name.strip()
    if not name or len(name) > _KEY_NAME_MAX:
        raise ValidationFailed(f"The key name must be 1 to {_KEY_NAME_MAX} characters.", extra={"field": "name"})
    prefix = secrets.token_hex(6)
    raw_key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, secret_hash=hash_api_key(raw_key), permissions=permissions
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key; revoking twice keeps the first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey:
    """Resolve a presented key to its ApiKey (tenant loaded), or raise AuthenticationFailed."""
    match = _API_KEY_RE.match(raw_key or "")
    if not match:
        raise AuthenticationFailed("Invalid API key.")
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=match.group(1)).first()
    # Compare even when the prefix is unknown, so timing does not tell which prefixes exist.
    expected = api_key.secret_hash if api_key else hash_api_key("")
    if not secrets.compare_digest(expected, hash_api_key(raw_key)) or api_key is None:
        raise AuthenticationFailed("Invalid API key.")
    if api_key.is_revoked:
        raise AuthenticationFailed("This API key has been revoked.")
    if api_key.tenant.is_suspended:
        raise PermissionDenied("This account is suspended.", extra={"reason": "tenant_suspended"})
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def tenant_suspend(*, tenant: Tenant) -> Tenant:
    """Suspend a tenant: its credentials stop working until resumed."""
    Tenant.objects.filter(pk=tenant.pk, suspended_at__isnull=True).update(suspended_at=timezone.now())
    tenant.refresh_from_db(fields=["suspended_at"])
    return tenant


def tenant_resume(*, tenant: Tenant) -> Tenant:
    """Lift a suspension."""
    Tenant.objects.filter(pk=tenant.pk).update(suspended_at=None)
    tenant.refresh_from_db(fields=["suspended_at"])
    return tenant


def webhook_secret_rotate(*, tenant: Tenant) -> Tenant:
    """Give the tenant a new webhook secret; the old webhook URL stops working at once."""
    tenant.webhook_secret = secrets.token_urlsafe(32)
    tenant.save(update_fields=["webhook_secret", "updated_at"])
    return tenant


def template_schema_sync(*, verbosity: int = 1) -> None:
    """Create the clone template schema if missing and migrate it like any tenant schema."""
    base = settings.TENANT_BASE_SCHEMA
    if not schema_exists(base):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{base}"')
    call_command("migrate_schemas", tenant=True, schema_name=base, interactive=False, verbosity=verbosity)
