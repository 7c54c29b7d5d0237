"""Reads for tenants."""

from __future__ import annotations

import contextlib
import re
import uuid

from django.conf import settings
from django.db.models import Q, QuerySet

from tenants.models import ApiKey, Membership, Tenant, User

DEMO_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def tenant_get_by_chat_token(*, token: str) -> Tenant | None:
    """The tenant a public chat token belongs to: its Papercups account id or its generated token."""
    if not token:
        return None
    condition = Q(public_token=token)
    with contextlib.suppress(ValueError):
        condition |= Q(papercups_account_id=uuid.UUID(token))
    return Tenant.objects.filter(condition).first()


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    """The businesses a user belongs to, with their role (tenant loaded), by name."""
    return Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name", "tenant_id")


def portal_membership_get(*, user: User, tenant_id: int | None) -> tuple[Membership | None, list[Membership]]:
    """The membership the portal works in, with all of the user's memberships (for the switcher).

    The session's choice (`tenant_id`) if the user still has it, else their first business; None for someone
    in no business. Called on every portal request, so a removed member loses access at once.
    """
    memberships = list(memberships_of_user(user=user))
    chosen = next((m for m in memberships if m.tenant_id == tenant_id), None)
    return chosen or (memberships[0] if memberships else None), memberships


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    """The tenant's team, owners first."""
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("-role", "user__email")


def api_key_list(*, tenant: Tenant) -> QuerySet[ApiKey]:
    """The tenant's API keys, newest first (revoked ones included)."""
    return ApiKey.objects.filter(tenant=tenant)


def tenant_demo_slug(*, tenant: Tenant) -> str:
    """The public slug of the tenant's demo page (`/demo/<slug>/`): its schema name, readable."""
    return tenant.schema_name.removeprefix("t_").replace("_", "-")


def tenant_get_by_demo_slug(*, slug: str) -> Tenant | None:
    """The tenant whose demo page `slug` names; None for unknown, malformed or suspended ones."""
    if not DEMO_SLUG_RE.match(slug or "") or len(slug) > 60:
        return None
    schema = "t_" + slug.replace("-", "_")
    if schema == settings.TENANT_BASE_SCHEMA:
        return None
    return Tenant.objects.filter(schema_name=schema, suspended_at__isnull=True).first()
