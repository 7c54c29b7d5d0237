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
        from billing.models import BillingAccount, Plan
        from billing.selectors import BILLING_CACHE
        from netia.versioned_cache import bump_on_write

        bump_on_write(BillingAccount, lambda: [BILLING_CACHE])
        bump_on_write(Plan, lambda: [BILLING_CACHE])
        stripe_client.configure()
