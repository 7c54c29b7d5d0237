"""Writes for tenants, users and API keys."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django_tenants.utils import schema_exists
from sesame.utils import get_query_string

from netia import dispatch
from netia.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from netia.fields import max_length
from tenants.audit import Actor, audit_record
from tenants.keys import key_authenticate, key_generate
from tenants.models import ApiKey, AuditEvent, Domain, Membership, Tenant, User, secret_fingerprint
from tenants.selectors import origin_normalize
from tenants.signals import membership_adding, tenant_onboarded

API_KEY_PREFIX = ApiKey.scheme
# Input limits are the columns' own (one place for each rule).
_TENANT_NAME_MAX = max_length(Tenant, "name")
_KEY_NAME_MAX = max_length(ApiKey, "name")


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
def tenant_onboard(*, name: str, owner_email: str, actor: Actor, ip: str | None = None) -> OnboardingResult:
    """Create a tenant, its schema (cloned from the template), owner, membership and first API key.

    The audit trail records the creation and the first key, by `actor`.

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
    audit_record(
        tenant=tenant,
        actor=actor,
        action=AuditEvent.Action.TENANT_CREATED,
        ip=ip,
        details={"name": name, "owner_email": owner_email},
    )
    tenant_onboarded.send(sender=Tenant, tenant=tenant)
    api_key, secret = api_key_create(tenant=tenant, name="Default key", actor=actor, ip=ip)
    return OnboardingResult(tenant=tenant, owner=owner, api_key=api_key, api_key_secret=secret)


@transaction.atomic
def api_key_create(
    *, tenant: Tenant, name: str, actor: Actor, ip: str | None = None, permissions: list[str] | None = None
) -> tuple[ApiKey, str]:
    """Create an API key and return it with its secret, which is never stored nor shown again."""
    permissions = list(ApiKey.Permission.values) if permissions is None else permissions
    unknown = sorted(set(permissions) - set(ApiKey.Permission.values))
    if unknown:
        raise ValidationFailed("Unknown permissions.", extra={"unknown": unknown})
    name = name.strip()
    if not name or len(name) > _KEY_NAME_MAX:
        raise ValidationFailed(f"The key name must be 1 to {_KEY_NAME_MAX} characters.", extra={"field": "name"})
    new = key_generate(scheme=API_KEY_PREFIX)
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=new.prefix, secret_hash=new.secret_hash, permissions=permissions
    )
    details = {"key": str(api_key), "permissions": permissions}
    audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.API_KEY_CREATED, ip=ip, details=details)
    return api_key, new.raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor, ip: str | None = None) -> ApiKey:
    """Revoke a key; revoking twice keeps the first revocation time (and records nothing)."""
    changed = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    if changed:
        audit_record(
            tenant=api_key.tenant,
            actor=actor,
            action=AuditEvent.Action.API_KEY_REVOKED,
            ip=ip,
            details={"key": str(api_key)},
        )
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey:
    """Resolve a presented key to its ApiKey (tenant loaded), or raise AuthenticationFailed."""
    return key_authenticate(keys=ApiKey.objects.select_related("tenant"), raw_key=raw_key, check=_tenant_not_suspended)


def _tenant_not_suspended(api_key: ApiKey) -> None:
    if api_key.tenant.is_suspended:
        raise PermissionDenied("This account is suspended.", extra={"reason": "tenant_suspended"})


@transaction.atomic
def tenant_suspend(*, tenant: Tenant, actor: Actor, ip: str | None = None, reason: str = "") -> Tenant:
    """Suspend a tenant: its bot stops answering on every channel and its API keys stop working until resumed.

    Suspending a suspended tenant changes nothing and records nothing.
    """
    changed = Tenant.objects.filter(pk=tenant.pk, suspended_at__isnull=True).update(suspended_at=timezone.now())
    tenant.refresh_from_db(fields=["suspended_at"])
    if changed:
        audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.TENANT_SUSPENDED, ip=ip, details=_why(reason))
    return tenant


@transaction.atomic
def tenant_resume(*, tenant: Tenant, actor: Actor, ip: str | None = None, reason: str = "") -> Tenant:
    """Lift a suspension; resuming a tenant that is not suspended changes nothing and records nothing."""
    changed = Tenant.objects.filter(pk=tenant.pk, suspended_at__isnull=False).update(suspended_at=None)
    tenant.refresh_from_db(fields=["suspended_at"])
    if changed:
        audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.TENANT_RESUMED, ip=ip, details=_why(reason))
    return tenant


@transaction.atomic
def tenant_settings_update(*, tenant: Tenant, changes: dict[str, Any], actor: Actor, ip: str | None = None) -> Tenant:
    """Change plain settings of a tenant (the staff console's form) and record each from -> to.

    Only plain, non-secret columns: the secrets and the suspension have their own services.
    """
    refused = sorted(set(changes) - _EDITABLE_SETTINGS)
    if refused:
        raise ValidationFailed("These settings cannot be changed here.", extra={"fields": refused})
    current = Tenant.objects.select_for_update().get(pk=tenant.pk)
    changed = {name: value for name, value in changes.items() if getattr(current, name) != value}
    if not changed:
        return tenant
    for name, value in changed.items():
        setattr(tenant, name, value)
    tenant.save(update_fields=[*changed, "updated_at"])
    details = {name: {"from": _plain(getattr(current, name)), "to": _plain(value)} for name, value in changed.items()}
    audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.TENANT_UPDATED, ip=ip, details=details)
    return tenant


# A host name: dot-separated labels of letters, digits and inner hyphens (what django-tenants matches a Host to).
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def domain_name_clean(domain: str) -> str:
    """The host name, lowercased, without a trailing dot; ValidationFailed if it is not one."""
    name = domain.strip().lower().rstrip(".")
    if not _HOST_NAME.match(name):
        raise ValidationFailed(f"Not a host name: {domain!r}.", extra={"field": "domain"})
    return name


def _primary_domain(tenant: Tenant) -> Domain | None:
    return Domain.objects.filter(tenant=tenant, is_primary=True).first()


@transaction.atomic
def domain_add(*, tenant: Tenant, domain: str, actor: Actor, ip: str | None = None, primary: bool = False) -> Domain:
    """Give the tenant another host name, its primary one if `primary` (or if it has none); 409 if taken."""
    name = domain_name_clean(domain)
    taken = Conflict(f"{name} is already a tenant's domain.", extra={"field": "domain"})
    Tenant.objects.select_for_update().get(pk=tenant.pk)  # serialises the tenant's domain changes
    if Domain.objects.filter(domain=name).exists():
        raise taken
    previous = _primary_domain(tenant)
    try:
        # The tenant lock does not cover another tenant adding the same name since the check: the unique
        # constraint decides, in a savepoint so the caller's transaction stays usable.
        with transaction.atomic():
            added = Domain.objects.create(tenant=tenant, domain=name, is_primary=primary or previous is None)
    except IntegrityError:
        raise taken from None
    details: dict[str, Any] = {"domain": name, "primary": added.is_primary}
    if added.is_primary and previous is not None:
        details["previous_primary"] = previous.domain
    audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.DOMAIN_ADDED, ip=ip, details=details)
    return added


@transaction.atomic
def domain_remove(*, domain: Domain, actor: Actor, ip: str | None = None) -> None:
    """Take a host name from its tenant; the primary one stays until another is made primary (409)."""
    Tenant.objects.select_for_update().get(pk=domain.tenant_id)
    current = Domain.objects.filter(pk=domain.pk).first()
    if current is None:
        return
    if current.is_primary:
        raise Conflict("The primary domain cannot be removed: make another domain primary first.")
    current.delete()
    details = {"domain": current.domain}
    audit_record(tenant=domain.tenant, actor=actor, action=AuditEvent.Action.DOMAIN_REMOVED, ip=ip, details=details)


@transaction.atomic
def domain_primary_set(*, domain: Domain, actor: Actor, ip: str | None = None) -> Domain:
    """Make `domain` its tenant's primary host name (the others are not); already primary: nothing recorded."""
    Tenant.objects.select_for_update().get(pk=domain.tenant_id)
    domain.refresh_from_db()
    if domain.is_primary:
        return domain
    previous = _primary_domain(domain.tenant)
    Domain.objects.filter(tenant_id=domain.tenant_id).exclude(pk=domain.pk).update(is_primary=False)
    Domain.objects.filter(pk=domain.pk).update(is_primary=True)
    domain.is_primary = True
    details = {"from": previous.domain if previous else None, "to": domain.domain}
    audit_record(
        tenant=domain.tenant, actor=actor, action=AuditEvent.Action.DOMAIN_PRIMARY_CHANGED, ip=ip, details=details
    )
    return domain


_EDITABLE_SETTINGS = frozenset(
    {"name", "owner_email", "subscription_status", "papercups_account_id", "papercups_base_url"}
)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | bool) else str(value)


def _why(reason: str) -> dict[str, str]:
    reason = reason.strip()
    return {"reason": reason} if reason else {}


@transaction.atomic
def webhook_secret_rotate(*, tenant: Tenant, actor: Actor, ip: str | None = None, reason: str = "") -> Tenant:
    """Give the tenant a new webhook secret; the old webhook URL stops working at once."""
    tenant.webhook_secret = secrets.token_urlsafe(32)
    tenant.webhook_secret_fingerprint = secret_fingerprint(tenant.webhook_secret)
    tenant.save(update_fields=["webhook_secret", "webhook_secret_fingerprint", "updated_at"])
    audit_record(
        tenant=tenant, actor=actor, action=AuditEvent.Action.WEBHOOK_SECRET_ROTATED, ip=ip, details=_why(reason)
    )
    return tenant


def _new_chat_token() -> str:
    return f"ct_{secrets.token_urlsafe(24)}"


@transaction.atomic
def chat_token_rotate(*, tenant: Tenant, actor: Actor, ip: str | None = None) -> Tenant:
    """Give the tenant a new public chat token; the old one stops working at once (update the website)."""
    tenant.public_token = _new_chat_token()
    tenant.save(update_fields=["public_token", "updated_at"])
    audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.CHAT_TOKEN_ROTATED, ip=ip)
    return tenant


CHAT_ALLOWED_ORIGINS_MAX = 50


@transaction.atomic
def chat_settings_update(
    *,
    tenant: Tenant,
    actor: Actor,
    ip: str | None = None,
    allowed_origins: list[str] | None = None,
    turns_per_hour: int | None = None,
) -> Tenant:
    """Restrict the public chat API to some websites and/or lower the tenant's hourly cap on anonymous turns.

    `allowed_origins`: `https://shop.example` style origins (empty list: any website). `turns_per_hour`:
    1 to CHAT_TENANT_TURNS_PER_HOUR (0: back to the platform's cap). None leaves a setting unchanged. The
    trail records each setting that changed, from -> to.
    """
    before = {"chat_allowed_origins": tenant.chat_allowed_origins, "chat_turns_per_hour": tenant.chat_turns_per_hour}
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
    changed = {name: {"from": old, "to": getattr(tenant, name)} for name, old in before.items()}
    changed = {name: change for name, change in changed.items() if change["from"] != change["to"]}
    if changed:
        audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.TENANT_UPDATED, ip=ip, details=changed)
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


@transaction.atomic
def member_sign_in_link_send(*, tenant: Tenant, user: User, actor: Actor, ip: str | None = None) -> None:
    """Email `user`, an active member of `tenant`, a one-time sign-in link to the portal on that business
    (staff helping an owner in), and record it. Never for staff accounts: a link would open the staff console
    without its password."""
    if not Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationFailed(f"{user.email} is not a member of this business.", extra={"field": "email"})
    if not user.is_active or user.is_staff:
        raise ValidationFailed("Sign-in links are only for active members who are not staff.", extra={"field": "email"})
    details = {"email": user.email}
    audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.SIGN_IN_LINK_SENT, ip=ip, details=details)
    sign_in_email_request(email=user.email, reason=SignInReason.LOGIN, tenant=tenant, next_path="/portal/")


def _owners(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Membership.Role.OWNER).count()


@transaction.atomic
def membership_invite(
    *, tenant: Tenant, email: str, role: str, invited_by: User, actor: Actor, ip: str | None = None
) -> Membership:
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
    details = {"email": email, "role": role}
    audit_record(tenant=tenant, actor=actor, action=AuditEvent.Action.MEMBER_INVITED, ip=ip, details=details)
    sign_in_email_request(email=email, reason=SignInReason.INVITATION, tenant=tenant, next_path="/portal/")
    return membership


@transaction.atomic
def membership_role_set(*, membership: Membership, role: str, actor: Actor, ip: str | None = None) -> Membership:
    """Change a team member's role; the team always keeps an owner."""
    if role not in Membership.Role.values:
        raise ValidationFailed("Unknown role.", extra={"field": "role", "allowed": list(Membership.Role.values)})
    Tenant.objects.select_for_update().get(pk=membership.tenant_id)
    membership.refresh_from_db()
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and _owners(membership.tenant) == 1:
        raise Conflict("The team needs at least one owner: make someone else owner first.")
    if membership.role != role:
        details = {"email": membership.user.email, "from": membership.role, "to": role}
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            tenant=membership.tenant, actor=actor, action=AuditEvent.Action.MEMBER_ROLE_CHANGED, ip=ip, details=details
        )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Actor, ip: str | None = None) -> None:
    """Remove someone from the team (their user stays: they may belong to other businesses)."""
    Tenant.objects.select_for_update().get(pk=membership.tenant_id)
    if not Membership.objects.filter(pk=membership.pk).exists():
        raise NotFound()
    if membership.role == Membership.Role.OWNER and _owners(membership.tenant) == 1:
        raise Conflict("The team needs at least one owner: make someone else owner first.")
    details = {"email": membership.user.email, "role": membership.role}
    membership.delete()
    audit_record(tenant=membership.tenant, actor=actor, action=AuditEvent.Action.MEMBER_REMOVED, ip=ip, details=details)
