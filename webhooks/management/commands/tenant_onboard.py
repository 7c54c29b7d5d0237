"""Onboard a tenant: `manage.py tenant_onboard --name NAME --email EMAIL [--papercups-...] --json`.

In the channel's app because it can connect the tenant's Papercups account at once (tenants knows no channel).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from netia.errors import ApplicationError
from tenants.audit import Actor
from webhooks.selectors import papercups_webhook_url
from webhooks.services import papercups_tenant_onboard


class Command(BaseCommand):
    help = "Create a tenant with its schema, owner, first API key and webhook secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--email", required=True, help="The owner's email address.")
        parser.add_argument("--papercups-account-id", default=None)
        parser.add_argument("--papercups-api-key", default="")
        parser.add_argument("--papercups-url", default="")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = papercups_tenant_onboard(
                name=options["name"],
                owner_email=options["email"],
                papercups_account_id=options["papercups_account_id"],
                papercups_api_key=options["papercups_api_key"],
                papercups_base_url=options["papercups_url"],
                actor=Actor.system("manage.py tenant_onboard"),
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        tenant = result.tenant
        data = {
            "tenant_id": tenant.pk,
            "name": tenant.name,
            "schema_name": tenant.schema_name,
            "owner_email": result.owner.email,
            "chat_token": tenant.chat_token,
            "api_key": result.api_key_secret,
            "webhook_url": papercups_webhook_url(tenant=tenant),
            "papercups_account_id": str(tenant.papercups_account_id) if tenant.papercups_account_id else None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(data))
        else:
            for key, value in data.items():
                self.stdout.write(f"{key}: {value}")
            self.stdout.write(self.style.WARNING("The API key is shown once; store it now."))
