"""Sync Stripe products and prices into dj-stripe, then map them to Netia plans."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from billing import stripe_client
from billing.services import plans_sync_from_prices


class Command(BaseCommand):
    help = (
        "Run `djstripe_sync_models Product Price` (models always named: syncing every model reaches APIs "
        "the configured key may not cover), then create or update a Plan for each recurring price whose "
        "metadata names `netia_plan`. Safe to re-run (deploys, cron)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not stripe_client.is_configured():
            raise CommandError("STRIPE_SECRET_KEY is not set.")
        call_command("djstripe_sync_models", "Product", "Price", fail_on_error=True, stdout=self.stdout)
        for plan in sorted(plans_sync_from_prices(), key=lambda p: p.code):
            state = "offered" if plan.is_active else "not offered until its limits are set"
            self.stdout.write(f"plan {plan.code}: price {plan.price_id} ({state})")
