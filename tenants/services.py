"""Writes for tenants, users and API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django_tenants.utils import schema_exists
from sesame.utils import get_query_string

from netia import dispatch
from netia.errors import AuthenticationFailed, Conflict, NotFound, PermissionDenied, ValidationFailed
from netia.fields import max_length
from tenants.models import ApiKey, Domain, Membership, Tenant, User, secret_fingerprint
from tenants.selectors import origin_normalize
from tenants.signals import membership_adding, tenant_onboarded

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
    webhook_secret = secrets.token_urlsafe(32)
    tenant = Tenant(
        schema_name=_schema_name_for(name),
        name=name,
        owner_email=owner_email,
        public_token=_new_chat_token(),
        webhook_secret=webhook_secret,
        webhook_secret_fingerprint=secret_fingerprint(webhook_secret),
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
    tenant.webhook_secret_fingerprint = secret_fingerprint(tenant.webhook_secret)
    tenant.save(update_fields=["webhook_secret", "webhook_secret_fingerprint", "updated_at"])
    return tenant


def _new_chat_token() -> str:
    return f"ct_{secrets.token_urlsafe(24)}"


def chat_token_rotate(*, tenant: Tenant) -> Tenant:
    """Give the tenant a new public chat token; the old one stops working at once (update the website)."""
    tenant.public_token = _new_chat_token()
    tenant.save(update_fields=["public_token", "updated_at"])
    return tenant


CHAT_ALLOWED_ORIGINS_MAX = 50


def chat_settings_update(
    *, tenant: Tenant, allowed_origins: list[str] | None = None, turns_per_hour: int | None = None
) -> Tenant:
    """Restrict the public chat API to some websites and/or lower the tenant's hourly cap on anonymous turns.

    `allowed_origins`: `https://shop.example` style origins (empty list: any website). `turns_per_hour`:
    1 to CHAT_TENANT_TURNS_PER_HOUR (0: back to the platform's cap). None leaves a setting unchanged.
    """
    fields = ["updated_at"]
    if allowed_origins is not None:
        if len(allowed_origins) > CHAT_ALLOWED_ORIGINS_MAX:
            raise ValidationFailed(f"At most {CHAT_ALLOWED_ORIGINS_MAX} origins.", extra={"field": "allowed_origins"})
        normalized = [origin_normalize(origin) for origin in allowed_origins]
        invalid = [origin for origin, norm in zip(allowed_origins, normalized, strict=True) if norm is None]
        if invalid:
            raise ValidationFailed(
                "Origins are http(s)://host[:port], without a path.",
                extra={"field": "allowed_origins", "invalid": invalid},
            )
        tenant.chat_allowed_origins = sorted({norm for norm in normalized if norm})
        fields.append("chat_allowed_origins")
    if turns_per_hour is not None:
        ceiling = settings.CHAT_TENANT_TURNS_PER_HOUR
        if not 0 <= turns_per_hour <= ceiling:
            raise ValidationFailed(
                f"Use 1 to {ceiling} turns per hour (0: the platform's limit).",
                extra={"field": "turns_per_hour", "max": ceiling},
            )
        tenant.chat_turns_per_hour = turns_per_hour or None
        fields.append("chat_turns_per_hour")
    tenant.save(update_fields=fields)
    return tenant


def template_schema_sync(*, verbosity: int = 1) -> None:
    """Create the clone template schema if missing and migrate it like any tenant schema."""
    base = settings.TENANT_BASE_SCHEMA
    if not schema_exists(base):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{base}"')
    call_command("migrate_schemas", tenant=True, schema_name=base, interactive=False, verbosity=verbosity)


# --- Portal sign-in links and team ------------------------------------------------------------------------------
class SignInReason:
    """Why a sign-in link is emailed (each has its own email template under tenants/email/)."""

    LOGIN = "login"
    SIGNUP = "signup"
    INVITATION = "invitation"


def _clean_email(email: str) -> str:
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationFailed("Enter a valid email address.", extra={"field": "email"}) from None
    return email


def safe_next_path(next_path: str) -> str:
    """`next_path` if it is a path on this site, else ""; a sign-in link never leads elsewhere."""
    if next_path.startswith("/") and url_has_allowed_host_and_scheme(next_path, allowed_hosts=None):
        return next_path
    return ""


def login_link_url(*, user: User, next_path: str = "", tenant: Tenant | None = None) -> str:
    """A one-time sign-in link for `user` (django-sesame), valid SESAME_MAX_AGE seconds.

    It points at the portal's link page (the URL name `dashboard:login-link`), under NETIA_PUBLIC_URL rather
    than the request's host, so a forged Host header cannot redirect someone's link. `tenant` is the business
    the portal opens on (the user must still be a member when they sign in).
    """
    url = f"{settings.NETIA_PUBLIC_URL}{reverse('dashboard:login-link')}{get_query_string(user)}"
    extra = {"next": safe_next_path(next_path), "tenant": str(tenant.pk) if tenant else ""}
    extra = {key: value for key, value in extra.items() if value}
    return f"{url}&{urlencode(extra)}" if extra else url


def sign_in_email_request(
    *, email: str, reason: str = SignInReason.LOGIN, tenant: Tenant | None = None, next_path: str = ""
) -> None:
    """Queue the email carrying a sign-in link, after commit.

    The task looks the address up: an unknown or inactive address gets nothing, and the caller cannot tell,
    so a sign-in form answers the same whether or not the address has an account.
    """
    dispatch.enqueue_on_commit(
        "tenants.tasks.sign_in_email_send",
        robust=True,
        email=email,
        reason=reason,
        tenant_id=tenant.pk if tenant else None,
        next_path=next_path,
    )


def _owners(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Membership.Role.OWNER).count()


@transaction.atomic
def membership_invite(*, tenant: Tenant, email: str, role: str, invited_by: User) -> Membership:
    """Add a person to the tenant's team (creating their user) and email them a sign-in link.

    Within the plan's team seats; 409 if they are already in the team.
    """
    email = _clean_email(email)
    if role not in Membership.Role.values:
        raise ValidationFailed("Unknown role.", extra={"field": "role", "allowed": list(Membership.Role.values)})
    Tenant.objects.select_for_update().get(pk=tenant.pk)  # serialises invitations: the seat count stays true
    if Membership.objects.filter(tenant=tenant, user__email=email).exists():
        raise Conflict(f"{email} is already in the team.", extra={"field": "email"})
    # Billing refuses a seat beyond the plan's (PlanLimitExceeded), before anything is written.
    membership_adding.send(
        sender=Membership, tenant=tenant, seats_used=Membership.objects.filter(tenant=tenant).count()
    )
    user = User.objects.filter(email=email).first() or User.objects.create_user(email=email)
    membership = Membership.objects.create(user=user, tenant=tenant, role=role)
    sign_in_email_request(email=email, reason=SignInReason.INVITATION, tenant=tenant, next_path="/portal/")
    return membership


@transaction.atomic
def membership_role_set(*, membership: Membership, role: str) -> Membership:
    """Change a team member's role; the team always keeps an owner."""
    if role not in Membership.Role.values:
        raise ValidationFailed("Unknown role.", extra={"field": "role", "allowed": list(Membership.Role.values)})
    Tenant.objects.select_for_update().get(pk=membership.tenant_id)
    membership.refresh_from_db()
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and _owners(membership.tenant) == 1:
        raise Conflict("The team needs at least one owner: make someone else owner first.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    """Remove someone from the team (their user stays: they may belong to other businesses)."""
    Tenant.objects.select_for_update().get(pk=membership.tenant_id)
    if not Membership.objects.filter(pk=membership.pk).exists():
        raise NotFound()
    if membership.role == Membership.Role.OWNER and _owners(membership.tenant) == 1:
        raise Conflict("The team needs at least one owner: make someone else owner first.")
    membership.delete()
