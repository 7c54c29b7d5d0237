"""Register this deployment's Stripe webhook endpoint (for the events Netia handles) and store its secret."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import stripe_client
from billing.services import webhook_endpoint_create


class Command(BaseCommand):
    help = "Create the Stripe webhook endpoint <base URL>/stripe/webhook/<uuid>/ and store its signing secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="", help="Public base URL (default: NETIA_PUBLIC_URL).")

    def handle(self, *args: Any, base_url: str, **options: Any) -> None:
        if not stripe_client.is_configured():
            raise CommandError("STRIPE_SECRET_KEY is not set.")
        endpoint = webhook_endpoint_create(base_url=base_url or settings.NETIA_PUBLIC_URL)
        self.stdout.write(f"Stripe webhook endpoint {endpoint.id}: {endpoint.url}")
