"""`migrate` is `migrate_schemas` (as in django-tenants), including the clone template."""

from tenants.management.commands.migrate_schemas import Command

__all__ = ["Command"]
