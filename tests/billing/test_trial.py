"""The free trial: started by onboarding, reminded once by the Celery beat task before it ends."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from billing.models import BillingAccount, BillingNotification
from billing.services import trial_extend
from billing.tasks import trial_reminders_send
from netia.celery import app
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tenants.services import tenant_onboard


def test_onboarding_starts_a_trial_of_the_configured_length(db, settings):
    settings.BILLING_TRIAL_DAYS = 21
    before = timezone.now()

    tenant = tenant_onboard(name="Trial Bakery", owner_email="baker@trial.test", actor=SYSTEM).tenant

    account = BillingAccount.objects.get(tenant=tenant)
    assert before + timedelta(days=21) <= account.trial_ends_at <= timezone.now() + timedelta(days=21)
    assert (tenant.subscription_status, account.plan, account.stripe_subscription_id) == ("trialing", None, "")


def test_the_reminder_task_is_scheduled_by_celery_beat():
    assert app.conf.beat_schedule["billing-trial-reminders"] == {
        "task": "billing.tasks.trial_reminders_send",
        "schedule": 3600.0,
    }
    assert "billing.tasks.trial_reminders_send" in app.tasks


def test_trials_ending_soon_get_one_reminder(
    tenant, other_tenant, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.BILLING_TRIAL_REMINDER_DAYS = 3
    ends = timezone.now() + timedelta(days=2, hours=12)
    trial_extend(tenant=tenant, until=ends, actor=SYSTEM)
    trial_extend(tenant=other_tenant, until=timezone.now() + timedelta(days=10), actor=SYSTEM)

    with django_capture_on_commit_callbacks(execute=True):
        first = trial_reminders_send.delay().get()
        again = trial_reminders_send.delay().get()

    assert (first, again) == (1, 0)
    assert [(m.subject, m.to) for m in mailoutbox] == [("Your Netia trial ends soon", ["owner@acme.test"])]
    text = " ".join(mailoutbox[0].body.split())
    assert f"Your free Netia trial ends on {ends:%-d %B %Y, %H:%M} UTC (3 days left)." in text
    assert "Choose a plan to keep it answering: http://127.0.0.1:8000/portal/billing" in text
    notification = BillingNotification.objects.get()
    assert (notification.tenant_id, notification.kind, notification.key) == (
        tenant.pk,
        "trial_ending",
        ends.isoformat(),
    )


def test_an_extended_trial_is_reminded_again_before_its_new_end(tenant, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        trial_extend(tenant=tenant, until=timezone.now() + timedelta(days=1), actor=SYSTEM)
        trial_reminders_send.delay()
        trial_extend(tenant=tenant, until=timezone.now() + timedelta(days=2), actor=SYSTEM)
        trial_reminders_send.delay()

    assert len(mailoutbox) == 2


def test_no_reminder_for_subscribed_suspended_or_ended_trials(tenant, other_tenant, mailoutbox):
    soon = timezone.now() + timedelta(days=1)
    trial_extend(tenant=tenant, until=soon, actor=SYSTEM)
    trial_extend(tenant=other_tenant, until=soon, actor=SYSTEM)
    BillingAccount.objects.filter(tenant=tenant).update(stripe_subscription_id="sub_1", stripe_status="trialing")
    Tenant.objects.filter(pk=other_tenant.pk).update(suspended_at=timezone.now())
    ended = tenant_onboard(name="Ended Trial", owner_email="late@trial.test", actor=SYSTEM).tenant
    trial_extend(tenant=ended, until=timezone.now() - timedelta(hours=1), actor=SYSTEM)

    assert trial_reminders_send.delay().get() == 0
    assert BillingNotification.objects.count() == 0
