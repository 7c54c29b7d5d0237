from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "staff"
    verbose_name = "Staff"

    def ready(self) -> None:
        from staff import schema  # noqa: F401  (registers the OpenAPI authentication extensions)
