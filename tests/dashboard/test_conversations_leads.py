"""Conversations (search, filters, transcript, take over / hand back, notes, export) and leads (filters,
status and notes, CSV export)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.chat_api import conversation_token_issue
from chat.models import Conversation, Message


def _visitors(response) -> list[str]:
    return [c.visitor_name for c in response.context["page"].object_list]


def test_conversations_are_searched_and_filtered(owner_client, tenant, chat_in):
    chat_in(tenant, "Do you deliver to Brooklyn?", session="a", visitor_name="Ana", intent="support")
    chat_in(tenant, "How much is a cake?", session="b", visitor_name="Ben", intent="pricing")
    old = chat_in(tenant, "Opening hours?", session="c", visitor_name="Cy", intent="opening_hours")
    with tenant_context(tenant):
        Conversation.objects.filter(pk=old.pk).update(status="human", created_at=timezone.now() - timedelta(days=10))
    today = timezone.now().date()

    assert sorted(_visitors(owner_client.get("/portal/conversations"))) == ["Ana", "Ben", "Cy"]
    assert _visitors(owner_client.get("/portal/conversations?q=brooklyn")) == ["Ana"]
    assert _visitors(owner_client.get("/portal/conversations?intent=pricing")) == ["Ben"]
    assert _visitors(owner_client.get("/portal/conversations?status=human")) == ["Cy"]
    assert _visitors(owner_client.get("/portal/conversations?channel=papercups")) == []
    assert sorted(_visitors(owner_client.get(f"/portal/conversations?date_from={today}"))) == ["Ana", "Ben"]
    assert _visitors(owner_client.get(f"/portal/conversations?date_to={today - timedelta(days=5)}")) == ["Cy"]
    empty = owner_client.get("/portal/conversations?q=zebra").content.decode()
    assert "No conversation matches" in empty


def test_filtering_with_htmx_returns_only_the_results(owner_client, tenant, chat_in):
    chat_in(tenant, "Hi", visitor_name="Ana")

    response = owner_client.get(
        "/portal/conversations?q=Ana", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="conversation-results"
    )

    html = response.content.decode()
    assert "Ana" in html
    assert "<html" not in html
    assert 'role="search"' not in html


def test_the_transcript_shows_intents_sources_and_notes(owner_client, tenant, chat_in):
    conversation = chat_in(tenant, "Where are you?", visitor_name="Ana")
    with tenant_context(tenant):
        Message.objects.filter(conversation=conversation, role="bot").update(
            intent="location", sources=[{"id": 1, "title": "Location and parking"}]
        )

    owner_client.post(f"/portal/conversations/{conversation.public_id}/note", {"text": "Call her back"})
    html = owner_client.get(f"/portal/conversations/{conversation.public_id}").content.decode()

    assert "Where are you?" in html
    assert "intent: location" in html
    assert "<span>Location and parking</span>" in html
    assert "owner@acme.test: Call her back" in html
    with tenant_context(tenant):
        note = Message.objects.get(conversation=conversation, private=True)
    assert (note.role, note.kind) == ("agent", "note")


def test_take_over_silences_the_bot_and_hand_back_wakes_it(owner_client, client, tenant, chat_in):
    conversation = chat_in(tenant, "Hello", session="visitor-1")
    url = f"/portal/conversations/{conversation.public_id}"

    taken = owner_client.post(f"{url}/take-over")
    silent = client.post(
        "/api/v1/chat",
        {
            "conversation_token": conversation_token_issue(tenant=tenant, conversation=conversation),
            "message": "Anyone?",
        },
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.public_token}"},
    )
    again = owner_client.post(f"{url}/take-over", HTTP_REFERER=f"http://testserver{url}")
    back = owner_client.post(f"{url}/hand-back")

    assert (taken.status_code, taken["Location"]) == (302, url)
    assert (silent.json()["reply"], silent.json()["handoff"]) == (None, True)
    assert (again.status_code, again["Location"]) == (302, f"http://testserver{url}")
    assert back.status_code == 302
    with tenant_context(tenant):
        conversation.refresh_from_db()
    assert (conversation.status, conversation.handoff_reason) == ("bot", "taken_over")
    messages = [str(m) for m in owner_client.get(url).context["messages"]]
    assert messages == [
        "You have this conversation: the bot stays silent until you hand it back.",
        "Only a conversation the bot is answering can be taken over.",
        "The bot answers this conversation again from the visitor's next message.",
    ]


def test_a_transcript_exports_as_text(owner_client, tenant, chat_in):
    conversation = chat_in(tenant, "Is the shop open on Sunday?", visitor_name="Ana")
    owner_client.post(f"/portal/conversations/{conversation.public_id}/note", {"text": "Regular customer"})

    response = owner_client.get(f"/portal/conversations/{conversation.public_id}/export")

    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="conversation-')
    text = response.content.decode()
    assert text.startswith("Conversation with Ana — Acme Test Shop\n")
    assert "Visitor:\nIs the shop open on Sunday?" in text
    assert "Bot:\nRe: Is the shop open on Sunday?" in text
    assert "Internal note:\nowner@acme.test: Regular customer" in text


def test_leads_are_filtered_and_updated(owner_client, tenant, lead_in):
    ana = lead_in(tenant, session="l1", name="Ana", email="ana@example.com")
    lead_in(tenant, session="l2", name="Ben", phone="+34600000000", status="won")

    assert [lead.name for lead in owner_client.get("/portal/leads?status=won").context["page"].object_list] == ["Ben"]
    assert [lead.name for lead in owner_client.get("/portal/leads?q=example").context["page"].object_list] == ["Ana"]

    saved = owner_client.post(f"/portal/leads/{ana.pk}", {"status": "contacted", "notes": "Called on Monday"})
    refused = owner_client.post(f"/portal/leads/{ana.pk}", {"status": "maybe", "notes": ""})

    assert saved.status_code == 302
    assert refused.status_code == 400
    with tenant_context(tenant):
        ana.refresh_from_db()
    assert (ana.status, ana.notes) == ("contacted", "Called on Monday")


def test_leads_export_as_csv_without_spreadsheet_formulas(owner_client, tenant, lead_in):
    lead_in(tenant, session="l1", name='=HYPERLINK("http://evil")', email="ana@example.com", notes="+1 call")
    lead_in(tenant, session="l2", name="Ben", status="lost")

    response = owner_client.get("/portal/leads/export.csv?status=new")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["id", "created_at", "status", "name", "email", "phone", "intent", "notes", "conversation_id"]
    assert len(rows) == 2
    assert (rows[1][2], rows[1][3], rows[1][4], rows[1][7]) == (
        "new",
        '\'=HYPERLINK("http://evil")',
        "ana@example.com",
        "'+1 call",
    )


def test_empty_lists_explain_themselves(owner_client):
    assert "No leads yet" in owner_client.get("/portal/leads").content.decode()
    assert "No conversations yet" in owner_client.get("/portal/conversations").content.decode()


def test_long_lists_are_paged_and_the_pages_keep_the_filters(owner_client, tenant, lead_in):
    for number in range(26):
        lead_in(tenant, session=f"p{number}", name=f"Lead {number}", status="new")

    first = owner_client.get("/portal/leads?status=new")
    second = owner_client.get("/portal/leads?status=new&page=2")

    assert len(first.context["page"].object_list) == 25
    assert 'href="?status=new&amp;page=2">Next</a>' in first.content.decode()
    assert len(second.context["page"].object_list) == 1
    assert 'href="?status=new&amp;page=1">Previous</a>' in second.content.decode()


def test_a_lead_whose_email_to_the_owner_was_given_up_says_so_in_the_list_and_on_its_page(
    owner_client, tenant, lead_in
):
    refused = "(550, b'5.1.1 <owner@acme.test>: Recipient address rejected')"
    ana = lead_in(
        tenant,
        session="l1",
        name="Ana",
        email="ana@example.com",
        notify_gave_up_at=timezone.now(),
        notify_error=refused,
        notify_gave_up_reason="refused",
    )
    ben = lead_in(tenant, session="l2", name="Ben", email="ben@example.com", notified_at=timezone.now())

    listing = owner_client.get("/portal/leads").content.decode()
    ana_page = owner_client.get(f"/portal/leads/{ana.pk}").content.decode()
    ben_page = owner_client.get(f"/portal/leads/{ben.pk}").content.decode()

    assert listing.count("Email to you not sent") == 1
    assert listing.index("Email to you not sent") > listing.index("ana@example.com")
    assert "We could not email you about this lead (to owner@acme.test)" in ana_page
    assert "We could not email you" not in ben_page
    assert refused not in listing + ana_page  # the mail server's words are for Netia staff
    assert "If that address is wrong" in ana_page  # the owner's mailbox refused it: their address to check


@pytest.mark.parametrize("reason", ["attempts", "age"])
def test_a_lead_email_given_up_for_the_platforms_failure_does_not_blame_the_owners_address(
    owner_client, tenant, lead_in, reason
):
    lead = lead_in(
        tenant,
        session="l1",
        name="Ana",
        email="ana@example.com",
        notify_gave_up_at=timezone.now(),
        notify_error="(535, b'5.7.8 Authentication credentials invalid')",
        notify_gave_up_reason=reason,
    )

    page = owner_client.get(f"/portal/leads/{lead.pk}").content.decode()

    assert "We could not email you about this lead (to owner@acme.test)" in page
    assert "address is wrong" not in page
    assert "Sending failed on our side, not because of your address" in page
