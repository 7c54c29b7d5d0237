"""Emails to the tenant's owner about the chats: one per lead, sent by a task after commit.

The lead is claimed (one UPDATE, committed) before the mail server is called and marked notified after, so
no row lock is held while talking SMTP and a duplicate task finds the lead claimed or done. The email has
a fixed Message-ID per lead: a resend after a worker died mid-send is recognisable as the same email.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context

from chat.models import Lead
from netia import claims
from netia.metrics import EMAILS_GIVEN_UP
from tenants.models import Tenant

logger = structlog.get_logger(__name__)

_CLAIM = {"claimed_field": "notify_claimed_at", "done_field": "notified_at"}
_FAILED = {
    "attempts_field": "notify_attempts",
    "gave_up_field": "notify_gave_up_at",
    "error_field": "notify_error",
    "reason_field": "notify_gave_up_reason",
}


def lead_notification_send(*, schema_name: str, lead_id: int) -> bool:
    """Email the owner about a lead unless that was done (or is being done); True if this call sent it.

    An OSError from the mail server propagates (the task retries) and gives the claim back, unless the email
    is given up: the recipient refused for good, NOTIFICATION_MAX_ATTEMPTS failures, or due for more than
    NOTIFICATION_MAX_AGE_SECONDS (`notify_due_at`, not the lead's last edit; recorded on the lead, logged and
    counted).
    """
    tenant = Tenant.objects.get(schema_name=schema_name)
    with schema_context(schema_name):
        rows = Lead.objects.filter(pk=lead_id, notify_gave_up_at__isnull=True)
        if not claims.claim(rows, lease=settings.NOTIFICATION_CLAIM_SECONDS, **_CLAIM):
            return False
        lead = Lead.objects.select_related("conversation").get(pk=lead_id)
        due_at = lead.notify_due_at or lead.updated_at  # written by the previous release: as the sweep dates it
        if claims.too_old(due_at, max_age=settings.NOTIFICATION_MAX_AGE_SECONDS):
            if claims.expired(rows, gave_up_field="notify_gave_up_at", reason_field="notify_gave_up_reason"):
                _given_up(schema_name=schema_name, lead_id=lead_id, error="too old to send")
            return False
        context = {"tenant": tenant, "lead": lead, "contact": lead.contact_info}
        message = EmailMultiAlternatives(
            subject=f"New lead from your website chat: {lead}",
            body=render_to_string("chat/email/lead.txt", context),
            to=[tenant.owner_email],
            headers={"Message-ID": f"<lead-{schema_name}-{lead_id}@netia>"},
        )
        message.attach_alternative(render_to_string("chat/email/lead.html", context), "text/html")
        try:
            claims.perform(rows, message.send, **_CLAIM)
        except OSError as error:
            if _give_up(
                rows,
                schema_name=schema_name,
                lead_id=lead_id,
                error=str(error),
                give_up=claims.GiveUp.REFUSED if claims.permanent(error) else None,
            ):
                return False
            raise
    return True


def _give_up(
    rows: QuerySet[Lead], *, schema_name: str, lead_id: int, error: str, give_up: claims.GiveUp | None
) -> bool:
    if not claims.failed(rows, error, give_up=give_up, max_attempts=settings.NOTIFICATION_MAX_ATTEMPTS, **_FAILED):
        return False
    _given_up(schema_name=schema_name, lead_id=lead_id, error=error)
    return True


def _given_up(*, schema_name: str, lead_id: int, error: str) -> None:
    EMAILS_GIVEN_UP.labels(kind="lead").inc()
    logger.warning("lead_notification_given_up", schema=schema_name, lead=lead_id, error=error)


def lead_notifications_date_missing() -> int:
    """Make due, from their last change, the leads with contact details whose email has no due time (caller in
    the tenant's schema): written by the previous release during a rolling deploy, after the schema gained
    `notify_due_at`. Without this the sweep, which selects by due time, would never send nor give them up."""
    with_contact = Q(email__gt="") | Q(phone__gt="") | Q(name__gt="")
    return Lead.objects.filter(
        with_contact, notify_due_at__isnull=True, notified_at__isnull=True, notify_gave_up_at__isnull=True
    ).update(notify_due_at=F("updated_at"))


def lead_notifications_due(*, older_than: float) -> QuerySet[Lead]:
    """Leads whose email became due `older_than` seconds ago or more and is neither sent, given up nor being
    sent (caller in the tenant's schema): what the sweep queues again."""
    rows = Lead.objects.filter(
        notify_gave_up_at__isnull=True, notify_due_at__lt=timezone.now() - timedelta(seconds=older_than)
    )
    return claims.unclaimed(rows, lease=settings.NOTIFICATION_CLAIM_SECONDS, **_CLAIM)
