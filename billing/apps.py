from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import (
            receivers,
            stripe_client,
            tasks,  # noqa: F401 - offers the tasks the services queue by name
        )

        receivers.connect()
        stripe_client.configure()
