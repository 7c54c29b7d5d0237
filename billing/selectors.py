"""Reads for billing: may this tenant's bot answer right now?"""

from __future__ import annotations

from dataclasses import dataclass

from tenants.models import Tenant


@dataclass(frozen=True)
class BotAccess:
    """Whether the tenant's bot may answer; `reason` is a stable code when it may not."""

    allowed: bool
    reason: str = ""


ACTIVE_STATUSES = frozenset(
    {Tenant.SubscriptionStatus.TRIALING, Tenant.SubscriptionStatus.ACTIVE, Tenant.SubscriptionStatus.PAST_DUE}
)


def bot_access_get(*, tenant: Tenant) -> BotAccess:
    """The bot answers for tenants that are not suspended and whose subscription is in good standing."""
    if tenant.is_suspended:
        return BotAccess(allowed=False, reason="tenant_suspended")
    if tenant.subscription_status not in ACTIVE_STATUSES:
        return BotAccess(allowed=False, reason="subscription_inactive")
    return BotAccess(allowed=True)
