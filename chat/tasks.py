"""Celery tasks of the chat app: thin wrappers that load by id and call one service."""

from __future__ import annotations

from celery import Task, shared_task
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context

from chat.models import Lead
from tenants.models import Tenant


@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True)
def lead_notify(self: Task, *, schema_name: str, lead_id: int) -> None:
    """Email the tenant's owner about a new or updated lead (retried if the mail server fails)."""
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
        try:
            message.send()
        except OSError as exc:
            raise self.retry(exc=exc) from exc
        Lead.objects.filter(pk=lead_id).update(notified_at=timezone.now())
