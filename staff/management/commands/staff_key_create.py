"""Create a staff API key: `manage.py staff_key_create --email EMAIL [--name NAME] --json`."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from netia.errors import ApplicationError
from staff.services import staff_key_create
from tenants.models import User


class Command(BaseCommand):
    help = "Create an API key for the admin REST API, held by a staff user; the key is printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="The staff user's email address.")
        parser.add_argument("--name", default="Staff key", help="What the key is for.")
        parser.add_argument("--json", action="store_true", help='Print one JSON object: {"api_key": ...}.')

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email=options["email"].strip().lower()).first()
        if user is None:
            raise CommandError(f"No user has the email address {options['email']!r}.")
        try:
            key, secret = staff_key_create(user=user, name=options["name"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps({"api_key": secret, "id": str(key.pk), "prefix": key.prefix}))
        else:
            self.stdout.write(f"api_key: {secret}")
            self.stdout.write(self.style.WARNING("The key is shown once; store it now."))
