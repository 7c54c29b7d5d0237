"""The demo tenant `make run` creates once: a small bakery with a knowledge base the bot can answer from."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F
from django_tenants.utils import tenant_context

from chat.chat_api import chat_api_turn, conversation_token_issue
from chat.models import Conversation, Lead, Message
from tenants.models import Tenant

DEMO_TENANT_NAME = "Demo Bakery"
DEMO_OWNER_EMAIL = "owner@demo-bakery.example"
DEMO_ADMIN_EMAIL = "admin@netia.localhost"

DEMO_ARTICLES: list[tuple[str, str]] = [
    (
        "Opening hours",
        "Demo Bakery is open Monday to Friday from 7:00 to 19:00, Saturday from 8:00 to 14:00. "
        "We are closed on Sundays and public holidays.",
    ),
    (
        "Location and parking",
        "You will find us at 12 Baker Street, next to the central market. "
        "Free parking is available behind the shop for 30 minutes.",
    ),
    (
        "Prices",
        "A sourdough loaf costs 4.50 euros, croissants cost 1.80 euros each and a dozen assorted pastries "
        "cost 18 euros. Celebration cakes start at 35 euros.",
    ),
    (
        "Custom cakes and orders",
        "Custom celebration cakes must be ordered at least 48 hours in advance. "
        "Leave your name, phone number and the date you need the cake, and we will call you back.",
    ),
    (
        "Delivery",
        "We deliver within 5 km of the shop from Tuesday to Saturday. Delivery costs 3 euros and is free "
        "for orders above 30 euros.",
    ),
    (
        "Allergens",
        "All our bread contains gluten. We bake a gluten-free loaf on Fridays, but it is made in a kitchen "
        "that also handles wheat, nuts and sesame.",
    ),
]

# Visitors' chats of the past week (days ago, visitor's messages), so the portal's overview has something to
# show from the first sign-in. They go through the public chat API's service, as a website's would.
DEMO_CHATS: list[tuple[int, list[str]]] = [
    (6, ["Hello! When are you open on Saturday?"]),
    (5, ["How much is a sourdough loaf?"]),
    (4, ["Do you deliver?"]),
    (4, ["I need a custom cake for Friday, call me on +34 600 123 456"]),
    (3, ["Is your bread gluten free?"]),
    (2, ["I want to speak to a person please"]),
    (1, ["Where can I park?"]),
    (1, ["How much are croissants?", "And a dozen pastries?"]),
    (0, ["Do you make vegan cakes?"]),
]


def demo_conversations_seed(*, tenant: Tenant) -> int:
    """Chat as the demo's visitors did over the last week (once, in the tenant's schema); returns how many."""
    with tenant_context(tenant):
        for number, (days_ago, texts) in enumerate(DEMO_CHATS):
            session = f"demo-visitor-{number}"
            token = ""
            for text in texts:
                _, result = chat_api_turn(
                    tenant=tenant, session_id="" if token else session, conversation_token=token, text=text
                )
                token = conversation_token_issue(tenant=tenant, conversation=result.conversation)
            # Date the chat back: the overview counts conversations per day.
            shift = timedelta(days=days_ago)
            conversation = Conversation.objects.get(session_id=session)
            Message.objects.filter(conversation=conversation).update(created_at=F("created_at") - shift)
            Conversation.objects.filter(pk=conversation.pk).update(
                created_at=F("created_at") - shift,
                last_message_at=F("last_message_at") - shift,
                handed_off_at=F("handed_off_at") - shift,
            )
            Lead.objects.filter(conversation=conversation).update(created_at=F("created_at") - shift)
    return len(DEMO_CHATS)
