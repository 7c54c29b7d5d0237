"""Usage metering: the billing period, counting under concurrency (two real threads, two connections), and
the 80% / 100% emails exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingAccount, BillingNotification, Plan, UsagePeriod
from billing.selectors import billing_period_for, bot_access_get
from billing.services import current_period, usage_ai_reply_record
from tenants.models import Tenant, User
from tests.billing.factories import PlanFactory


def _plan(tenant: Tenant, limit: int, code: str = "small") -> Plan:
    plan = PlanFactory.create(code=code, ai_replies_per_month=limit)
    BillingAccount.objects.filter(tenant=tenant).update(plan=plan)
    return plan


# --- the billing period -------------------------------------------------------------------------------------------
def test_without_a_subscription_the_period_is_the_utc_month(tenant):
    start, end = current_period(tenant=tenant, now=datetime(2028, 2, 29, 23, 59, tzinfo=UTC))

    assert (start, end) == (datetime(2028, 2, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC))


def test_a_live_subscriptions_period_is_the_billing_period(subscribe, webhooks, tenant, stripe_fake):
    webhooks.post_all(subscribe())
    item = stripe_fake.get(BillingAccount.objects.get(tenant=tenant).stripe_subscription_id)["items"]["data"][0]

    count = usage_ai_reply_record(tenant=tenant)

    period = UsagePeriod.objects.get(tenant=tenant)
    assert count == 1
    assert (period.period_start, period.period_end) == (
        datetime.fromtimestamp(item["current_period_start"], UTC),
        datetime.fromtimestamp(item["current_period_end"], UTC),
    )


def test_a_renewal_not_yet_received_continues_where_the_period_ended(tenant):
    account = BillingAccount(
        tenant=tenant,
        stripe_status="active",
        current_period_start=datetime(2028, 1, 31, 10, tzinfo=UTC),
        current_period_end=datetime(2028, 2, 29, 10, tzinfo=UTC),
    )

    current = billing_period_for(account=account, now=datetime(2028, 2, 10, tzinfo=UTC))
    next_one = billing_period_for(account=account, now=datetime(2028, 3, 5, tzinfo=UTC))
    account.stripe_status = "canceled"
    canceled = billing_period_for(account=account, now=datetime(2028, 2, 10, tzinfo=UTC))

    assert current == (datetime(2028, 1, 31, 10, tzinfo=UTC), datetime(2028, 2, 29, 10, tzinfo=UTC))
    assert next_one == (datetime(2028, 2, 29, 10, tzinfo=UTC), datetime(2028, 3, 29, 10, tzinfo=UTC))
    assert canceled == (datetime(2028, 2, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC))


def test_a_yearly_price_is_twelve_monthly_allowances_not_one_year_long_one(tenant):
    _plan(tenant, 3)
    BillingAccount.objects.filter(tenant=tenant).update(
        stripe_status="active",
        current_period_start=datetime(2028, 1, 31, 10, tzinfo=UTC),
        current_period_end=datetime(2029, 1, 31, 10, tzinfo=UTC),
        price_interval="year",
        stripe_subscription_id="sub_yearly",
    )
    Tenant.objects.filter(pk=tenant.pk).update(subscription_status="active")
    tenant.refresh_from_db()
    account = BillingAccount.objects.get(tenant=tenant)
    february = datetime(2028, 2, 20, tzinfo=UTC)
    march = datetime(2028, 3, 5, tzinfo=UTC)

    periods = [billing_period_for(account=account, now=now) for now in (datetime(2028, 2, 10, tzinfo=UTC), march)]
    UsagePeriod.objects.create(  # February's allowance used up
        tenant=tenant, period_start=periods[0][0], period_end=periods[0][1], ai_replies=3
    )

    assert periods == [
        (datetime(2028, 1, 31, 10, tzinfo=UTC), datetime(2028, 2, 29, 10, tzinfo=UTC)),
        (datetime(2028, 2, 29, 10, tzinfo=UTC), datetime(2028, 3, 31, 10, tzinfo=UTC)),
    ]
    assert bot_access_get(tenant=tenant, now=february).reason == "plan_limit_reached"
    assert bot_access_get(tenant=tenant, now=march).allowed is True  # a new month of the yearly plan


def test_a_yearly_subscription_from_stripe_meters_by_month(subscribe_yearly, webhooks, tenant, stripe_fake):
    webhooks.post_all(subscribe_yearly())
    account = BillingAccount.objects.get(tenant=tenant)

    usage_ai_reply_record(tenant=tenant)

    period = UsagePeriod.objects.get(tenant=tenant)
    assert (account.price_interval, account.price_interval_count) == ("year", 1)
    assert account.current_period_start is not None
    assert account.current_period_end is not None
    assert (account.current_period_end - account.current_period_start).days in (365, 366)
    assert (period.period_start, period.period_end.month) == (
        account.current_period_start,
        account.current_period_start.month % 12 + 1,
    )
    assert 28 <= (period.period_end - period.period_start).days <= 31


# --- limit emails -------------------------------------------------------------------------------------------------
def test_owner_is_emailed_once_at_80_and_once_at_100_percent(tenant, mailoutbox, django_capture_on_commit_callbacks):
    _plan(tenant, 5)

    with django_capture_on_commit_callbacks(execute=True):
        counts, recorded_after = [], []
        for _ in range(7):
            counts.append(usage_ai_reply_record(tenant=tenant))
            recorded_after.append(BillingNotification.objects.filter(tenant=tenant).count())

    start, end = current_period(tenant=tenant)
    assert counts == [1, 2, 3, 4, 5, 6, 7]
    assert recorded_after == [0, 0, 0, 1, 2, 2, 2]
    assert [(m.subject, m.to) for m in mailoutbox] == [
        ("You have used 80% of your Netia AI replies", ["owner@acme.test"]),
        ("You have used all your Netia AI replies", ["owner@acme.test"]),
    ]
    assert "Your assistant has given 4 of the 5 AI replies of your Small plan for this billing period." in (
        mailoutbox[0].body
    )
    assert "Your assistant has given all 5 AI replies of your Small plan for this billing period." in (
        mailoutbox[1].body
    )
    assert f"period ends on {end:%-d %B %Y}" in " ".join(mailoutbox[1].body.split())
    assert [m.alternatives[0][1] for m in mailoutbox] == ["text/html", "text/html"]
    assert sorted(BillingNotification.objects.filter(tenant=tenant).values_list("kind", "key")) == [
        ("usage_limit", f"{start.isoformat()}/5"),
        ("usage_warning", f"{start.isoformat()}/5"),
    ]
    assert BillingNotification.objects.filter(sent_at__isnull=True).count() == 0


def test_a_count_that_other_replies_brought_to_a_threshold_meanwhile_still_emails_once(
    tenant, mailoutbox, django_capture_on_commit_callbacks
):
    _plan(tenant, 5)
    for _ in range(3):
        usage_ai_reply_record(tenant=tenant)
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    # Each caller read 0 replies before the 3 above were counted: one more cannot reach 80% (4 of 5), so the
    # counting statement leaves the email out, and the email is recorded by a statement of its own.
    with django_capture_on_commit_callbacks(execute=True), connection.execute_wrapper(record):
        counts = [usage_ai_reply_record(tenant=tenant, used=0) for _ in range(3)]

    assert counts == [4, 5, 6]
    writes = [sql for sql in statements if sql.startswith("WITH")]  # the billing state's reads aside
    assert ["billing_billingnotification" in sql for sql in writes] == [False, True, False, True, False, True]
    assert [m.subject for m in mailoutbox] == [
        "You have used 80% of your Netia AI replies",
        "You have used all your Netia AI replies",
    ]


def test_a_count_known_to_reach_a_threshold_records_the_email_in_the_counting_statement(tenant):
    _plan(tenant, 5)
    for _ in range(3):
        usage_ai_reply_record(tenant=tenant, used=0)
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        count = usage_ai_reply_record(tenant=tenant, used=3)

    writes = [sql for sql in statements if sql.startswith("WITH")]
    assert count == 4
    assert len(writes) == 1
    assert "billing_billingnotification" in writes[0]
    assert list(BillingNotification.objects.filter(tenant=tenant).values_list("kind", flat=True)) == ["usage_warning"]


def test_a_new_limit_in_the_period_warns_again_once(tenant, mailoutbox, django_capture_on_commit_callbacks):
    _plan(tenant, 5)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            usage_ai_reply_record(tenant=tenant)
        _plan(tenant, 10, code="bigger")  # upgraded mid-period: 5 of 10 used
        for _ in range(5):
            usage_ai_reply_record(tenant=tenant)

    assert [m.subject for m in mailoutbox] == [
        "You have used 80% of your Netia AI replies",
        "You have used all your Netia AI replies",
        "You have used 80% of your Netia AI replies",
        "You have used all your Netia AI replies",
    ]
    assert "8 of the 10 AI replies of your Bigger plan" in mailoutbox[2].body


def test_a_failing_mail_server_leaves_the_email_unsent_for_the_retry(tenant, settings, mailoutbox):
    from billing.services import billing_notification_send

    _plan(tenant, 1)
    usage_ai_reply_record(tenant=tenant)  # on-commit callbacks are not run: the email is only recorded
    notification = BillingNotification.objects.get(tenant=tenant)
    settings.EMAIL_BACKEND = "tests.billing.test_usage.BrokenBackend"

    with pytest.raises(OSError, match="mail server down"):
        billing_notification_send(notification_id=notification.pk)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    first, again = (billing_notification_send(notification_id=notification.pk) for _ in range(2))

    assert (first, again) == (True, False)
    assert [m.subject for m in mailoutbox] == ["You have used all your Netia AI replies"]


def test_a_billing_email_refused_for_good_or_too_old_is_given_up_and_shown_to_staff(tenant, settings, smtp, client):
    from billing.services import billing_notification_send, billing_notifications_due

    _plan(tenant, 1)
    usage_ai_reply_record(tenant=tenant)
    refused = BillingNotification.objects.get(tenant=tenant)
    stale = BillingNotification.objects.create(
        tenant=tenant, kind="trial_ending", key="2026-01-01", attempts=2, error="(451, b'4.3.0 Try again later')"
    )
    BillingNotification.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=3))
    smtp.refuse(tenant.owner_email)

    sent = [billing_notification_send(notification_id=n.pk) for n in (refused, stale)]
    refused.refresh_from_db()
    stale.refresh_from_db()
    client.force_login(User.objects.create_superuser("root@netia.test", "pw-unused-123"))
    page = client.get(reverse("admin:billing_billingnotification_changelist"), {"gave_up_at__isnull": "False"})

    assert sent == [False, False]
    assert (refused.attempts, refused.sent_at, refused.gave_up_at is not None) == (1, None, True)
    assert "550" in refused.error
    assert (refused.gave_up_reason, stale.gave_up_reason, stale.gave_up_at is not None) == ("refused", "age", True)
    assert (stale.attempts, stale.error, smtp.messages) == (2, "(451, b'4.3.0 Try again later')", [])  # kept
    assert list(billing_notifications_due(older_than=0)) == []
    assert {n.pk for n in page.context["cl"].result_list} == {refused.pk, stale.pk}


class BrokenBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise OSError("mail server down")


# --- concurrency ----------------------------------------------------------------------------------------------------
def _in_threads(count: int, work: Callable[[], None]) -> list[BaseException]:
    """Run `work` in `count` threads started together, each with its own database connection (autocommit,
    outside the test's transaction); returns the exceptions raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_two_workers_counting_the_same_tenant_lose_no_increments_and_email_once(tenant, mailoutbox):
    # The threads commit for real (the session tenant is committed, so they see it); the test's own
    # transaction creates nothing they could wait on, and the committed rows are removed at the end.
    per_worker = 100  # 2 x 100 = the default plan's 200: both thresholds are crossed concurrently

    def cleanup() -> None:
        UsagePeriod.objects.filter(tenant_id=tenant.pk).delete()
        BillingNotification.objects.filter(tenant_id=tenant.pk).delete()

    try:

        def count() -> None:
            for _ in range(per_worker):
                usage_ai_reply_record(tenant=tenant)

        errors = _in_threads(2, count)
        start, _ = current_period(tenant=tenant)
        period = UsagePeriod.objects.get(tenant=tenant, period_start=start)
        notifications = sorted(BillingNotification.objects.filter(tenant=tenant).values_list("kind", flat=True))
    finally:
        assert _in_threads(1, cleanup) == []

    assert errors == []
    assert period.ai_replies == 2 * per_worker
    assert notifications == ["usage_limit", "usage_warning"]
    assert sorted(m.subject for m in mailoutbox) == [
        "You have used 80% of your Netia AI replies",
        "You have used all your Netia AI replies",
    ]
    assert UsagePeriod.objects.filter(tenant=tenant).count() == 0


def test_usage_is_kept_per_tenant(tenant, other_tenant):
    for _ in range(3):
        usage_ai_reply_record(tenant=tenant)
    usage_ai_reply_record(tenant=other_tenant)

    assert sorted(UsagePeriod.objects.values_list("tenant__name", "ai_replies")) == [
        ("Acme Test Shop", 3),
        ("Globex Test Clinic", 1),
    ]
    assert timezone.now() < UsagePeriod.objects.get(tenant=tenant).period_end
