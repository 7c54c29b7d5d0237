"""Reads for tenants."""

from __future__ import annotations

import contextlib
import uuid

from django.db.models import Q

from tenants.models import Tenant


def tenant_get_by_chat_token(*, token: str) -> Tenant | None:
    """The tenant a public chat token belongs to: its Papercups account id or its generated token."""
    if not token:
        return None
    condition = Q(public_token=token)
    with contextlib.suppress(ValueError):
        condition |= Q(papercups_account_id=uuid.UUID(token))
    return Tenant.objects.filter(condition).first()
