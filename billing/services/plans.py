"""Plans from Stripe prices (limits as metadata) and the Stripe webhook endpoint."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from djstripe.models import Price, WebhookEndpoint

from billing import stripe_client
from billing.models import Plan

logger = structlog.get_logger(__name__)

_LIMIT_KEYS = ("ai_replies_per_month", "knowledge_articles_max", "team_seats")


def plan_code(price: Price) -> str:
    """The `netia_plan` a price names in its metadata (the price's, else its product's); "" if none."""
    product_metadata = price.product.metadata if price.product is not None else {}
    return str({**(product_metadata or {}), **(price.metadata or {})}.get("netia_plan") or "").strip()


def _limits_from_metadata(metadata: dict[str, Any]) -> dict[str, int | None]:
    """Limits named in Stripe metadata; "unlimited" (or empty) means no limit."""
    limits: dict[str, int | None] = {}
    for key in _LIMIT_KEYS:
        if key not in metadata:
            continue
        raw = str(metadata[key]).strip().lower()
        if raw in ("", "unlimited"):
            limits[key] = None
        elif raw.isdigit():
            limits[key] = int(raw)
        else:
            logger.warning("plan_limit_metadata_invalid", key=key, value=metadata[key])
    return limits


@transaction.atomic
def plans_sync_from_prices() -> list[Plan]:
    """Create or update a Plan for every synced recurring price whose metadata (price's, else product's)
    names `netia_plan`; limits come from the metadata keys when given, else they stay as edited here.

    Returns the plans touched. A new plan without all three limits in metadata is created inactive, so it
    is not offered before staff set its limits. When several active prices name one plan, the newest is
    the one Checkout sells; subscribers on the others keep the plan through its code.
    """
    touched: list[Plan] = []
    for price in Price.objects.select_related("product").filter(active=True).order_by("created"):
        if not (price.stripe_data.get("recurring") or {}).get("interval"):
            continue
        code = plan_code(price)
        if not code:
            continue
        product_metadata = price.product.metadata if price.product is not None else {}
        limits = _limits_from_metadata({**(product_metadata or {}), **(price.metadata or {})})
        name = price.product.name if price.product is not None else code
        plan = Plan.objects.filter(price=price).first() or Plan.objects.filter(code=code).first()
        if plan is None:
            plan = Plan(code=code, name=name, is_active=len(limits) == len(_LIMIT_KEYS))
        plan.price = price
        plan.name = name
        for key, value in limits.items():
            setattr(plan, key, value)
        plan.full_clean(exclude=["price"])
        plan.save()
        touched.append(plan)
    return touched


def webhook_endpoint_create(*, base_url: str) -> WebhookEndpoint:
    """Register `<base_url>/stripe/webhook/<uuid>/` with Stripe for Netia's events and store its secret."""
    endpoint_uuid = str(uuid.uuid4())
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    data = stripe_client.webhook_endpoint_create(url=f"{base_url.rstrip('/')}{path}", endpoint_uuid=endpoint_uuid)
    return WebhookEndpoint.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
