"""Reads only the portal needs: the setup checklist, each step ticked from the tenant's real state."""

from __future__ import annotations

from dataclasses import dataclass

from billing.selectors import billing_account_get
from chat.models import Conversation, KnowledgeArticle
from tenants.models import Tenant
from webhooks.selectors import papercups_connection_state_get


@dataclass(frozen=True)
class SetupStep:
    key: str
    title: str
    done: bool
    hint: str
    url_name: str
    owners_only: bool = False


def setup_checklist_get(*, tenant: Tenant) -> list[SetupStep]:
    """The five steps from sign-up to a working, paid-for bot. Runs in the tenant's schema."""
    connected = papercups_connection_state_get(tenant=tenant).connected
    return [
        SetupStep(
            "channel",
            "Connect your Papercups chat",
            connected,
            "Netia answers the visitors who write in your Papercups widget.",
            "dashboard:channel",
            owners_only=True,
        ),
        SetupStep(
            "knowledge",
            "Teach the bot about your business",
            KnowledgeArticle.objects.exists(),
            "Add an article (hours, prices, delivery…) or import your FAQ as a CSV.",
            "dashboard:knowledge",
        ),
        SetupStep(
            "try",
            "Try the bot",
            Conversation.objects.exists(),
            "Ask it a question in the “Try it” panel, exactly as a visitor would.",
            "dashboard:bot",
        ),
        SetupStep(
            "widget",
            "Copy the widget snippet to your website",
            Conversation.objects.filter(channel=Conversation.Channel.PAPERCUPS).exists(),
            "Ticked when the first visitor writes through the widget on your site.",
            "dashboard:channel",
            owners_only=True,
        ),
        SetupStep(
            "plan",
            "Choose a plan",
            bool(billing_account_get(tenant=tenant).stripe_subscription_id),
            "Your free trial includes everything; subscribe before it ends to keep the bot answering.",
            "dashboard:billing",
            owners_only=True,
        ),
    ]
