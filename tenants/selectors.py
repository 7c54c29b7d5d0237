"""Reads for tenants. The lookups a request starts with (chat token, Papercups account, id) are cached.

Cached tenants are version-keyed (`netia.versioned_cache`, namespace TENANTS_CACHE): every write to a
tenant (save, delete or queryset update) invalidates them once it commits. Their secrets stay encrypted in
the shared cache; each process keeps the tenants it looked up decrypted, checked against the version on
every lookup (`cached_instance`).
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q, QuerySet

from netia.versioned_cache import Prefetched, cached_instance, local_instance, version_keys
from tenants.models import ApiKey, Membership, Tenant, User, secret_fingerprint

DEMO_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

TENANTS_CACHE = "tenants"


def tenant_get_cached(*, key: str, condition: Q, prefetched: Prefetched | None = None) -> Tenant | None:
    """The one tenant matching `condition`, cached under `key` (unique per condition, e.g. "chat:<token>")."""
    return cached_instance(
        Tenant, TENANTS_CACHE, key, lambda: Tenant.objects.filter(condition).first(), prefetched=prefetched
    )


def tenant_lookup_cache_keys() -> list[str]:
    """The cache keys a cached tenant lookup reads first, for a caller to read them with its own round trip
    and pass them as `prefetched` (`netia.versioned_cache.Prefetched`)."""
    return version_keys([TENANTS_CACHE])


def tenant_get_by_chat_token(
    *, token: str, prefetched: Prefetched | None = None, guess: TenantGuess | None = None
) -> Tenant | None:
    """The tenant a public chat token belongs to (its current `public_token`; a rotated one no longer works).

    `guess`: `tenant_chat_token_guess` for this token, made in this request; its tenant is the answer, as it is,
    when `prefetched` holds the version it is current for (the lookup would build the same tenant again).
    """
    if not token:
        return None
    if guess is not None and prefetched is not None and guess.token == token:
        version_key, version = guess.version_key, guess.version
        if version_key in prefetched.keys and prefetched.found.get(version_key) == version:
            return guess.tenant
    return tenant_get_cached(key=f"chat:{token}", condition=Q(public_token=token), prefetched=prefetched)


def tenant_get_by_webhook_secret(*, secret: str) -> Tenant | None:
    """The tenant whose webhook secret this is, found by the secret's indexed fingerprint (nothing decrypted)."""
    if not secret:
        return None
    fingerprint = secret_fingerprint(secret)
    return tenant_get_cached(key=f"webhook:{fingerprint}", condition=Q(webhook_secret_fingerprint=fingerprint))


def origin_normalize(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case for an http(s) origin, else None (paths, credentials, "null")."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def tenant_origin_allowed(*, tenant: Tenant, origin: str) -> bool:
    """Whether a browser on `origin` may use the tenant's chat token (no origins configured: any website).

    Netia's own pages (the portal's "try it" box, the demo page) are always allowed.
    """
    allowed = tenant.chat_allowed_origins or []
    if not allowed:
        return True
    normalized = origin_normalize(origin)
    return normalized is not None and normalized in [*allowed, origin_normalize(settings.NETIA_PUBLIC_URL)]


def tenant_chat_turns_per_hour(*, tenant: Tenant) -> int:
    """The tenant's cap on anonymous chat API turns per hour: its own setting, never above the platform's."""
    platform = settings.CHAT_TENANT_TURNS_PER_HOUR
    own = tenant.chat_turns_per_hour
    return min(own, platform) if own else platform


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


class TenantGuess(NamedTuple):
    """The tenant this process last found for a chat token, with the tenant cache's version key and the version
    it is current for."""

    token: str
    version_key: str
    version: str
    tenant: Tenant


def tenant_chat_token_guess(*, token: str) -> TenantGuess | None:
    """The tenant this process last found for a chat token, unchecked. While the shared version still is the
    guess's, it is the tenant `tenant_get_by_chat_token` returns; a caller may act on the guess only under that
    condition."""
    local = local_instance(Tenant, TENANTS_CACHE, f"chat:{token}") if token else None
    return TenantGuess(token, *local) if local is not None else None


def tenant_get_by_demo_slug(*, slug: str) -> Tenant | None:
    """The tenant whose demo page `slug` names; None for unknown, malformed or suspended ones."""
    if not DEMO_SLUG_RE.match(slug or "") or len(slug) > 60:
        return None
    schema = "t_" + slug.replace("-", "_")
    if schema == settings.TENANT_BASE_SCHEMA:
        return None
    return Tenant.objects.filter(schema_name=schema, suspended_at__isnull=True).first()


def tenant_get(*, tenant_id: int) -> Tenant | None:
    """The tenant with this id, or None (tasks load theirs by id)."""
    return tenant_get_cached(key=f"id:{tenant_id}", condition=Q(pk=tenant_id))
