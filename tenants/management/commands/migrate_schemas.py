"""`migrate_schemas` that also keeps the clone template schema migrated.

New tenants are cloned from TENANT_BASE_SCHEMA, so the template must always be at the latest migration:
whenever all tenant schemas are migrated, the template is migrated first.
"""

from __future__ import annotations

from typing import Any

from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand


class Command(MigrateSchemasCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        super().handle(*args, **options)
        if self.sync_tenant and not options.get("schema_name") and not options.get("plan"):
            from tenants.services import template_schema_sync

            template_schema_sync(verbosity=int(options.get("verbosity", 1)))
