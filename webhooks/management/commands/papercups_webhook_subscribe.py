"""Optional setup step: a Papercups webhook with the `conversation:updated` scope, which the dashboard cannot make."""

from __future__ import annotations

import getpass
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from netia.errors import ApplicationError
from tenants.models import Tenant
from webhooks.services import papercups_webhook_subscribe


class Command(BaseCommand):
    help = (
        "Register the tenant's webhook URL in Papercups with the conversation:updated scope (through Papercups' "
        "dashboard API, logging in as a dashboard user of the account). Optional: without it Netia reads each "
        "conversation before replying; with it, assignments and closing are mirrored as they happen. The "
        "password is read from PAPERCUPS_PASSWORD or prompted for, used once, and never stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's id or schema name.")
        parser.add_argument("--email", required=True, help="A Papercups dashboard login of the tenant's account.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = options["tenant"]
        tenant = Tenant.objects.filter(**({"pk": int(key)} if key.isdigit() else {"schema_name": key})).first()
        if tenant is None or not tenant.papercups_account_id:
            raise CommandError(f"No tenant {key!r} connected to Papercups.")
        password = os.environ.get("PAPERCUPS_PASSWORD") or getpass.getpass("Papercups password: ")
        try:
            subscription = papercups_webhook_subscribe(tenant=tenant, email=options["email"], password=password)
        except ApplicationError as error:
            raise CommandError(f"{error.message} ({error.extra.get('problem', error.code)})") from None
        if not subscription.verified:
            raise CommandError(
                f"Papercups created the subscription {subscription.id} but could not verify the webhook URL: is "
                "NETIA_PUBLIC_URL reachable from Papercups?"
            )
        self.stdout.write(f"Subscription {subscription.id} with scope {subscription.scope!r}, verified.")
