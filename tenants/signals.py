"""Hooks through which the layers above react to tenants' events (tenants never imports them)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the onboarding transaction once the tenant, its schema, owner and membership exist; keyword
# argument `tenant`. A receiver that raises rolls the whole onboarding back. Billing starts the trial here.
tenant_onboarded = Signal()

# Sent inside `membership_invite`'s transaction before a new member is added; keyword arguments `tenant` and
# `seats_used` (memberships so far). A receiver that raises refuses the seat. Billing applies the plan's seats.
membership_adding = Signal()
