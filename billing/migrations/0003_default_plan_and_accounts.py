"""The default (trial) plan, and a billing account for every tenant onboarded before billing existed."""

from datetime import timedelta

from django.conf import settings
from django.db import migrations


def forwards(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    BillingAccount = apps.get_model("billing", "BillingAccount")
    Tenant = apps.get_model("tenants", "Tenant")
    if not Plan.objects.filter(is_default=True).exists():
        Plan.objects.create(
            code="trial",
            name="Trial",
            ai_replies_per_month=200,
            knowledge_articles_max=20,
            team_seats=2,
            is_default=True,
            is_active=False,
        )
    trial = timedelta(days=settings.BILLING_TRIAL_DAYS)
    for tenant in Tenant.objects.filter(billing_account__isnull=True):
        BillingAccount.objects.create(tenant=tenant, trial_ends_at=tenant.created_at + trial)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_plans_accounts"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
