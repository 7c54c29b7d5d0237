"""Emails to the tenant's owner about the chats (a new or updated lead), sent by a task after commit."""

from __future__ import annotations

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context

from chat.models import Lead
from tenants.models import Tenant


def lead_notification_send(*, schema_name: str, lead_id: int) -> None:
    """Email the owner about a lead and record when. An OSError from the mail server propagates (the task
    retries) and leaves the lead unmarked."""
    tenant = Tenant.objects.get(schema_name=schema_name)
    with schema_context(schema_name):
        lead = Lead.objects.select_related("conversation").get(pk=lead_id)
        context = {"tenant": tenant, "lead": lead, "contact": lead.contact_info}
        message = EmailMultiAlternatives(
            subject=f"New lead from your website chat: {lead}",
            body=render_to_string("chat/email/lead.txt", context),
            to=[tenant.owner_email],
        )
        message.attach_alternative(render_to_string("chat/email/lead.html", context), "text/html")
        message.send()
        Lead.objects.filter(pk=lead_id).update(notified_at=timezone.now())
