"""`Lead.notify_due_at`: when the owner's email about a lead became due, so its give-up age no longer restarts
each time the lead is edited (it counted from `updated_at`).

Existing leads with contact details get their `updated_at`: the latest moment the email can have become due,
so no email still pending is given up sooner than it would have been before.
"""

from django.db import migrations, models
from django.db.models import F, Q


def due_from_last_change(apps, schema_editor):
    Lead = apps.get_model("chat", "Lead")
    with_contact = Q(email__gt="") | Q(phone__gt="") | Q(name__gt="")
    Lead.objects.filter(with_contact, notify_due_at__isnull=True).update(notify_due_at=F("updated_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0009_notification_give_up"),
    ]

    operations = [
        migrations.AddField(
            model_name="lead",
            name="notify_due_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the owner's email about this lead became due (its first contact details), set once: "
                "the email's age counts from here, however often the lead is edited.",
                null=True,
            ),
        ),
        migrations.RunPython(due_from_last_change, migrations.RunPython.noop),
    ]
