"""Tenants (one PostgreSQL schema each), their domains, users, memberships and API keys. Public schema."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django_tenants.clone import CloneSchema
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.utils import get_creation_fakes_migrations, schema_exists

from netia.fields import EncryptedTextField
from netia.tenancy import tenant_connection
from netia.versioned_cache import VersionedQuerySet
from tenants.cloning import schema_clone_from_template


class UserManager(BaseUserManager["User"]):
    """Users are identified by email; there is no username."""

    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: a tenant's owner or member (magic-link login) or a Netia employee (`is_staff`)."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Netia employee: may use the admin console.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email


def secret_fingerprint(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret: an indexable stand-in for looking the secret up."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Tenant(TenantMixin):
    """A business using Netia. Its conversations, knowledge and leads live in its own schema."""

    class SubscriptionStatus(models.TextChoices):
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"
        UNPAID = "unpaid", "Unpaid"

    name = models.CharField(max_length=200)
    owner_email = models.EmailField()
    subscription_status = models.CharField(
        max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.TRIALING
    )
    # The public chat token (POST /api/v1/chat); public like the widget, rotatable (the old one dies at once).
    public_token = models.CharField(max_length=64, unique=True)
    # Websites allowed to call the chat API from a browser ("https://shop.example"); empty: any website.
    chat_allowed_origins = models.JSONField(default=list, blank=True)
    # Anonymous chat API turns per hour for this tenant; empty: the platform's CHAT_TENANT_TURNS_PER_HOUR
    # (a tenant may only lower it).
    chat_turns_per_hour = models.PositiveIntegerField(null=True, blank=True)
    webhook_secret = EncryptedTextField(help_text="Carried in the Papercups webhook URL; rotatable.")
    # SHA-256 of the webhook secret: finds the tenant of a presented secret without decrypting every tenant's.
    # Nullable so that rows written before the fingerprint existed stay unique until migrated.
    webhook_secret_fingerprint = models.CharField(  # noqa: DJ001
        max_length=64, unique=True, null=True, editable=False
    )
    papercups_account_id = models.UUIDField(unique=True, null=True, blank=True)
    papercups_base_url = models.URLField(blank=True, help_text="Empty: PAPERCUPS_BASE_URL from settings.")
    papercups_api_key = EncryptedTextField(blank=True)
    papercups_bot_user_id = models.PositiveIntegerField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    auto_create_schema = True
    auto_drop_schema = False

    # Updates through the queryset invalidate the cached tenant lookups too (tenants.selectors).
    objects = VersionedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["subscription_status"]), models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return self.name

    def create_schema(self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1) -> bool:
        """Create the schema as a copy of the migrated template, its `django_migrations` rows included.

        The copy (tenants.cloning) costs the same whatever the number of tenants, unlike django-tenants'
        `clone_schema()` function, which stays the fallback. django-tenants' faked `migrate_schemas` after a
        clone is skipped: the copied migration records leave it nothing to do but render every app's model
        state for the post-migrate signal. Without a template, or when migrations are not faked,
        django-tenants' own path (replaying migrations) runs.
        """
        base = self.get_base_schema() if get_creation_fakes_migrations() else False
        if not (sync_schema and base and schema_exists(base)):
            return bool(super().create_schema(check_if_exists, sync_schema, verbosity))
        if check_if_exists and schema_exists(self.schema_name):
            return False
        tenant_connection().set_schema_to_public()
        if not schema_clone_from_template(base=str(base), new=self.schema_name):
            CloneSchema().clone_schema(base, self.schema_name, self.clone_mode)
        tenant_connection().set_schema_to_public()
        return True

    @property
    def chat_token(self) -> str:
        """The token the tenant's website chats with (never the Papercups account id, which cannot be rotated)."""
        return self.public_token

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def email(self) -> str:
        """The billing email: dj-stripe (DJSTRIPE_SUBSCRIBER_MODEL) gives it to the tenant's Stripe customer."""
        return self.owner_email

    def get_full_name(self) -> str:
        """The Stripe customer's name (dj-stripe calls this when it creates a customer)."""
        return self.name


class Domain(DomainMixin):
    """A host name of a tenant (required by django-tenants; Netia routes by credential, not host)."""


class Membership(models.Model):
    """A user's role in a tenant."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"


class HashedKey(models.Model):
    """A bearer key `<scheme>_<prefix>_<secret>` (tenants.keys): the prefix finds it, only a SHA-256 is stored."""

    scheme: ClassVar[str]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part of the key, for lookup.")
    secret_hash = models.CharField(max_length=64, help_text="SHA-256 of the full key.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scheme}_{self.prefix}_…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ApiKey(HashedKey):
    """A developer's key to the tenant's REST API. Only a hash of the secret is stored."""

    scheme = "nk"

    class Permission(models.TextChoices):
        CHAT = "chat", "Chat"
        KNOWLEDGE_READ = "knowledge:read", "Read knowledge"
        KNOWLEDGE_WRITE = "knowledge:write", "Write knowledge"
        CONVERSATIONS_READ = "conversations:read", "Read conversations"
        LEADS_READ = "leads:read", "Read leads"
        LEADS_WRITE = "leads:write", "Write leads"
        BOT_READ = "bot:read", "Read bot configuration"
        BOT_WRITE = "bot:write", "Change bot configuration"
        BILLING = "billing", "Billing"
        AUDIT_READ = "audit:read", "Read the audit trail"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    permissions = models.JSONField(default=list)

    class Meta(HashedKey.Meta):
        verbose_name = "API key"


class AuditEvent(models.Model):
    """One change to a tenant, recorded once, in the transaction that made it: who, what, when, from where.

    `details` never holds a secret (tenants.audit.audit_record refuses secret-looking keys). The actor is kept
    as ids plus a label, so the trail stays readable after the user or key is gone.
    """

    class Action(models.TextChoices):
        TENANT_CREATED = "tenant.created", "Tenant created"
        TENANT_SUSPENDED = "tenant.suspended", "Tenant suspended"
        TENANT_RESUMED = "tenant.resumed", "Tenant resumed"
        TENANT_UPDATED = "tenant.updated", "Tenant settings changed"
        PLAN_CHANGED = "billing.plan_changed", "Plan changed"
        STATUS_CHANGED = "billing.status_changed", "Subscription status changed"
        TRIAL_EXTENDED = "billing.trial_extended", "Trial extended"
        API_KEY_CREATED = "api_key.created", "API key created"
        API_KEY_REVOKED = "api_key.revoked", "API key revoked"
        WEBHOOK_SECRET_ROTATED = "webhook_secret.rotated", "Webhook secret rotated"
        CHAT_TOKEN_ROTATED = "chat_token.rotated", "Chat token rotated"
        DOMAIN_ADDED = "domain.added", "Domain added"
        DOMAIN_REMOVED = "domain.removed", "Domain removed"
        DOMAIN_PRIMARY_CHANGED = "domain.primary_changed", "Primary domain changed"
        MEMBER_INVITED = "member.invited", "Member invited"
        MEMBER_ROLE_CHANGED = "member.role_changed", "Member's role changed"
        MEMBER_REMOVED = "member.removed", "Member removed"
        CHANNEL_CONNECTED = "channel.connected", "Channel connected"
        SIGN_IN_LINK_SENT = "sign_in_link.sent", "Sign-in link sent"
        RECORDS_VIEWED = "staff.records_viewed", "Conversations or leads viewed by staff"

    class ActorKind(models.TextChoices):
        USER = "user", "Member of the tenant"
        STAFF = "staff", "Netia staff"
        API_KEY = "api_key", "Tenant API key"
        SYSTEM = "system", "System"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_events")
    action = models.CharField(max_length=32, choices=Action.choices)
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_key_id = models.UUIDField(null=True, blank=True, help_text="The tenant API key or staff key used.")
    actor_label = models.CharField(max_length=255, help_text="Who, readable: an email, a key's name, a process.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="What changed; never a secret.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="auditevent_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_label}"
