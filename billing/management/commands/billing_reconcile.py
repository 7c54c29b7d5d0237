"""Re-read tenants' Stripe subscriptions now (the Celery beat job does it daily)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import selectors, stripe_client
from billing.services import billing_account_reconcile
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Re-read each tenant's Stripe subscriptions, sync them and recompute the tenant's status; a tenant "
        "with more than one ongoing subscription is reported and staff (BILLING_STAFF_EMAILS) are emailed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", type=int, action="append", help="Only this tenant id (repeatable).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not stripe_client.is_configured():
            raise CommandError("STRIPE_SECRET_KEY is not set.")
        tenants = selectors.tenants_with_stripe_customer()
        if options["tenant"]:
            tenants = Tenant.objects.filter(pk__in=options["tenant"]).order_by("pk")
        problems = 0
        for tenant in tenants:
            account = billing_account_reconcile(tenant=tenant)
            ongoing = list(account.ongoing_subscriptions)
            if len(ongoing) > 1:
                problems += 1
            state = f"{len(ongoing)} ongoing subscription(s)" + (f": {', '.join(ongoing)}" if ongoing else "")
            self.stdout.write(f"tenant {tenant.pk} ({tenant.name}): {tenant.subscription_status}, {state}")
        if problems:
            self.stderr.write(self.style.WARNING(f"{problems} tenant(s) with more than one ongoing subscription."))
