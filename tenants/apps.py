from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and accounts"

    def ready(self) -> None:
        from tenants import (  # noqa: F401
            schema,  # registers the OpenAPI authentication extensions
            tasks,  # offers the tasks the services queue by name
        )
