from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and accounts"

    def ready(self) -> None:
        from netia.versioned_cache import bump_on_write
        from tenants import (  # noqa: F401
            schema,  # registers the OpenAPI authentication extensions
            tasks,  # offers the tasks the services queue by name
        )
        from tenants.models import Tenant
        from tenants.selectors import TENANTS_CACHE

        bump_on_write(Tenant, lambda: [TENANTS_CACHE])
