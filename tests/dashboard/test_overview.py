"""The overview (figures, charts, checklist), the setup checklist ticked from real state, the paused banner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.models import BillingAccount
from billing.services import trial_extend
from chat.models import Conversation, KnowledgeArticle
from tenants.audit import SYSTEM
from tenants.models import Tenant


def test_the_overview_shows_the_figures_as_charts(owner_client, tenant, chat_in):
    chat_in(tenant, "How much is a cake?", intent="pricing", visitor_name="Ana")

    page = owner_client.get("/portal/?days=7")

    assert page.status_code == 200
    figures = page.context["figures"]
    assert (figures.days, figures.conversations, figures.top_intents) == (7, 1, [("pricing", 1)])
    html = page.content.decode()
    assert '<svg class="chart"' in html
    assert "Conversations per day: 1 in 7 days" in html
    assert 'aria-label="Top intents: pricing 1"' in html
    assert '<a href="?days=7" aria-current="page">7 days</a>' in html


def test_an_unknown_period_falls_back_to_thirty_days(owner_client):
    assert owner_client.get("/portal/?days=12").context["figures"].days == 30


def test_an_empty_business_sees_what_to_do_first(owner_client):
    html = owner_client.get("/portal/").content.decode()

    assert "Finish setting up" in html
    assert "No conversations yet" in html
    assert "0 of 5 done" in html


def _ticks(client) -> dict[str, bool]:
    return {step.key: step.done for step in client.get("/portal/setup").context["steps"]}


def test_each_setup_step_ticks_itself_from_real_state(owner_client, tenant, chat_in):
    assert _ticks(owner_client) == {"channel": False, "knowledge": False, "try": False, "widget": False, "plan": False}

    with tenant_context(tenant):
        KnowledgeArticle.objects.create(title="Hours", content="9 to 5")
    chat_in(tenant, "Hello")
    assert _ticks(owner_client) == {"channel": False, "knowledge": True, "try": True, "widget": False, "plan": False}

    with tenant_context(tenant):
        Conversation.objects.create(channel="papercups", external_id="pc-1")
    Tenant.objects.filter(pk=tenant.pk).update(
        papercups_account_id="2ebbad4c-1f0a-4c8e-9d3b-eaf9ebf469a5", papercups_api_key="k", papercups_bot_user_id=7
    )
    BillingAccount.objects.filter(tenant=tenant).update(stripe_subscription_id="sub_1", stripe_status="active")
    assert _ticks(owner_client) == {"channel": True, "knowledge": True, "try": True, "widget": True, "plan": True}
    assert "All set" in owner_client.get("/portal/setup").content.decode()
    assert "Finish setting up" not in owner_client.get("/portal/").content.decode()


def test_members_see_which_steps_an_owner_does(member_client):
    html = member_client.get("/portal/setup").content.decode()

    assert html.count("An owner does this step.") == 3


@pytest.mark.parametrize("url", ["/portal/", "/portal/knowledge", "/portal/leads", "/portal/bot"])
def test_every_page_says_why_the_bot_is_paused_and_what_to_do(owner_client, member_client, tenant, url):
    trial_extend(tenant=tenant, until=timezone.now() - timedelta(days=1), actor=SYSTEM)

    owner_html = owner_client.get(url).content.decode()
    member_html = member_client.get(url).content.decode()

    for html in (owner_html, member_html):
        assert "Your bot is paused" in html
        assert "Your free trial has ended." in html
    assert '<a href="/portal/billing">Choose a plan</a>' in owner_html
    assert "Ask an owner of Acme Test Shop to choose a plan." in member_html


def test_no_banner_while_the_bot_answers(owner_client):
    assert "Your bot is paused" not in owner_client.get("/portal/").content.decode()
