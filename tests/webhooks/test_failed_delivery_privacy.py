"""Failed deliveries are recorded in the public schema, which staff read across tenants: no contact details."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from chat.models import Conversation, Lead, Message
from webhooks.models import FailedDelivery
from webhooks.services.outbox import failed_delivery_record


def test_a_failed_handoff_notes_preview_carries_no_visitor_contact_details(tenant):
    with tenant_context(tenant):
        conversation = Conversation.objects.create(
            channel="papercups", external_id="pc-1", visitor_name="Ana Pérez", visitor_email="ana@example.com"
        )
        Lead.objects.create(conversation=conversation, name="Ana Pérez", email="ana@example.com", phone="+14155552671")
        note = Message.objects.create(
            conversation=conversation,
            channel="papercups",
            role="system",
            kind="note",
            private=True,
            content="Netia handed this conversation to your team (reason: complaint).\n"
            "Contact: name Ana Pérez, email ana@example.com, phone +14155552671\n"
            "Last visitor message: my other number is 415 555 0134, ana.perez@work.example",
        )

        failed_delivery_record(
            tenant=tenant, conversation=conversation, kind="message", error="Papercups answered 503.", message=note
        )

    preview = FailedDelivery.objects.get(tenant=tenant).content_preview
    assert preview == (
        "Netia handed this conversation to your team (reason: complaint).\n"
        "Contact: name [contact], email [contact], phone [contact]\n"
        "Last visitor message: my other number is [phone], [email]"
    )
