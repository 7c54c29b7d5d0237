"""The customer portal in a real chromium: a new business from sign-up to a working bot and a team, and every
page at desktop and phone widths (screenshots under tests/artifacts/)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core import mail
from django.test import override_settings
from django_tenants.utils import tenant_context
from playwright.sync_api import Browser, BrowserContext, Page, expect

from chat.chat_api import chat_api_turn
from chat.knowledge import knowledge_article_create
from chat.models import Conversation, KnowledgeArticle, Lead
from dashboard.demo import DEMO_ARTICLES
from tenants.audit import SYSTEM
from tenants.models import Tenant, User
from tenants.selectors import tenant_demo_slug
from tenants.services import login_link_url, tenant_onboard
from tests.browser.conftest import ARTIFACTS, LiveNetia, NetworkLog
from tests.fakes.papercups_server import FakePapercups

LINK = re.compile(r"https?://\S+/login/link\?\S+")
DESKTOP, PHONE = 1280, 375


def link_for(email: str) -> str:
    """The sign-in link of the last email sent to `email`."""
    bodies = [str(m.body) for m in mail.outbox if email in m.to]
    assert bodies, f"no email to {email}"
    return LINK.findall(bodies[-1])[-1]


def new_tab(browser: Browser, live_netia: LiveNetia, network: NetworkLog, **options) -> tuple[BrowserContext, Page]:
    context = browser.new_context(base_url=live_netia.url, viewport={"width": DESKTOP, "height": 900}, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    network.attach(page)
    return context, page


def sign_in(page: Page, link: str) -> None:
    page.goto(link)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/portal/"))


def _forget(*, tenant_names: list[str], emails: list[str]) -> None:
    for tenant in Tenant.objects.filter(name__in=tenant_names):
        tenant.delete(force_drop=True)
    User.objects.filter(email__in=emails).delete()


@pytest.fixture
def public_url(live_netia: LiveNetia) -> Iterator[None]:
    """Links in emails point at the live server (as NETIA_PUBLIC_URL does in production)."""
    with override_settings(NETIA_PUBLIC_URL=live_netia.url):
        yield


def test_a_new_business_from_sign_up_to_a_working_bot_and_a_team(
    browser, live_netia, network, public_url, db, screenshot
):
    suffix = uuid.uuid4().hex[:6]
    name, owner_email, member_email = f"Crumb & Co {suffix}", f"ana-{suffix}@crumb.test", f"bea-{suffix}@crumb.test"
    context, page = new_tab(browser, live_netia, network, permissions=["clipboard-read", "clipboard-write"])
    member_context = None
    try:
        with (
            FakePapercups() as papercups,
            # The simulator on 127.0.0.1 is a self-hosted Papercups the operator allowed (netia.outbound).
            override_settings(NETIA_OUTBOUND_ALLOWED_HOSTS=[papercups.url.removeprefix("http://")]),
        ):
            # Sign up, then open the magic link from the captured email: the setup checklist.
            page.goto("/signup")
            page.get_by_label("Business name").fill(name)
            page.get_by_label("Email").fill(owner_email)
            page.get_by_role("button", name="Create my business").click()
            expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
            sign_in(page, link_for(owner_email))
            assert page.url.endswith("/portal/setup")
            expect(page.get_by_text("0 of 5 done")).to_be_visible()

            # Teach the bot an article.
            page.get_by_role("link", name="Knowledge").first.click()
            page.get_by_role("link", name="Add your first article").click()
            page.get_by_label("Title").fill("Custom cakes")
            page.get_by_label("Content").fill(
                "Custom celebration cakes must be ordered at least 48 hours in advance. They start at 35 euros."
            )
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("“Custom cakes” saved.")).to_be_visible()

            # Ask the try-it panel a question answered from it, then leave an email: a lead.
            page.get_by_role("link", name="Bot", exact=True).click()
            page.get_by_label("Your message").fill("How far in advance must I order a custom cake?")
            page.get_by_role("button", name="Send").click()
            answer = page.locator(".chatbox .bubble.bot").nth(1)
            expect(answer).to_contain_text("48 hours in advance")
            expect(answer.locator(".sources")).to_contain_text("Custom cakes")
            page.get_by_label("Your message").fill("Please call me back, my email is lead-" + suffix + "@example.com")
            page.get_by_role("button", name="Send").click()
            page.get_by_role("link", name="Lead saved: see it in Leads").click()
            expect(page.get_by_text(f"lead-{suffix}@example.com", exact=True)).to_be_visible()
            screenshot(page, "leads")

            # Connect Papercups (the simulator), then copy the widget snippet.
            account = papercups.add_account(company_name="Crumb", bot_email=f"bot-{suffix}@crumb.test")
            page.get_by_role("link", name="Channel").click()
            page.get_by_label("Papercups account id").fill(account.id)
            page.get_by_label("Personal API key").fill(account.api_key)
            page.get_by_label("Papercups URL (self-hosted only)").fill(papercups.url)
            page.get_by_role("button", name="Connect Papercups").click()
            expect(page.get_by_text("Connected to Papercups")).to_be_visible()
            page.locator("[data-copy-target=widget-snippet]").click()
            expect(page.locator("#snippet-copy-status")).to_have_text("The snippet is in your clipboard.")
            copied = page.evaluate("navigator.clipboard.readText()")
            assert "window.Papercups" in copied
            assert f'token: "{account.id}"' in copied
            assert f'baseUrl: "{papercups.url}"' in copied
            screenshot(page, "channel")

            page.get_by_role("link", name="Setup checklist").click()
            expect(page.get_by_text("3 of 5 done")).to_be_visible()

            # Invite a member, who signs in from the invitation and cannot open billing.
            page.get_by_role("link", name="Team").click()
            page.get_by_label("Email").fill(member_email)
            page.get_by_role("button", name="Send invitation").click()
            expect(page.get_by_text(f"Invitation sent to {member_email}.")).to_be_visible()
            member_context, member_page = new_tab(browser, live_netia, network)
            sign_in(member_page, link_for(member_email))
            expect(member_page.locator(".sidebar")).to_contain_text(name)
            expect(member_page.locator(".sidebar")).not_to_contain_text("Billing")
            refused = member_page.goto("/portal/billing")
            assert refused is not None
            assert refused.status == 403
            expect(member_page.get_by_role("heading", name="Only owners can open this page")).to_be_visible()
            screenshot(member_page, "member-billing")

        assert network.bad_assets() == []
        assert network.off_platform() == []
    finally:
        for ctx in (context, member_context):
            if ctx is not None:
                ctx.close()
        _forget(tenant_names=[name], emails=[owner_email, member_email])


@dataclass
class Bakery:
    tenant: Tenant
    owner: User
    pages: list[tuple[str, str]]  # (screenshot name, path)


@pytest.fixture
def bakery(db) -> Iterator[Bakery]:
    """A business with knowledge, a conversation and a lead, so that no page is empty."""
    suffix = uuid.uuid4().hex[:6]
    onboarded = tenant_onboard(
        name=f"Screenshot Bakery {suffix}", owner_email=f"owner-{suffix}@bakery.test", actor=SYSTEM
    )
    tenant = onboarded.tenant
    with tenant_context(tenant):
        for title, content in DEMO_ARTICLES:
            knowledge_article_create(tenant=tenant, title=title, content=content)
        chat_api_turn(tenant=tenant, session_id="shot-1", text="When are you open on Saturday?")
        chat_api_turn(tenant=tenant, session_id="shot-2", text="I need a cake for Friday, call me on +34 600 123 456")
        conversation = Conversation.objects.get(session_id="shot-1")
        lead = Lead.objects.get(conversation__session_id="shot-2")
        article = KnowledgeArticle.objects.order_by("title").first()
        assert article is not None
    pages = [
        ("overview", "/portal/"),
        ("setup", "/portal/setup"),
        ("conversations", "/portal/conversations"),
        ("conversation", f"/portal/conversations/{conversation.public_id}"),
        ("leads", "/portal/leads"),
        ("lead", f"/portal/leads/{lead.pk}"),
        ("knowledge", "/portal/knowledge"),
        ("article", f"/portal/knowledge/{article.pk}"),
        ("bot", "/portal/bot"),
        ("channel", "/portal/channel"),
        ("billing", "/portal/billing"),
        ("api-keys", "/portal/api-keys"),
        ("team", "/portal/team"),
        ("demo", f"/demo/{tenant_demo_slug(tenant=tenant)}/"),
    ]
    try:
        yield Bakery(tenant=tenant, owner=onboarded.owner, pages=pages)
    finally:
        _forget(tenant_names=[tenant.name], emails=[onboarded.owner.email])


LABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map(el => el.id || el.name)"""


def test_every_page_at_desktop_and_phone_widths(browser, live_netia, network, bakery, public_url):
    context, page = new_tab(browser, live_netia, network)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    public = [("landing", "/"), ("signup", "/signup"), ("login", "/login")]
    problems: dict[str, object] = {}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        for width in (DESKTOP, PHONE):
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in public:
                page.goto(path)
                page.screenshot(path=str(ARTIFACTS / f"portal-{name}-{width}.png"), full_page=True)
            if width == DESKTOP:
                sign_in(page, login_link_url(user=bakery.owner))
            for name, path in bakery.pages:
                response = page.goto(path)
                assert response is not None, path
                assert response.status == 200, path
                page.screenshot(path=str(ARTIFACTS / f"portal-{name}-{width}.png"), full_page=True)
                overflow = page.evaluate("document.scrollingElement.scrollWidth") - width
                unlabelled = page.evaluate(LABELLED)
                if overflow > 0 or unlabelled:
                    problems[f"{path}@{width}"] = {"overflow_px": overflow, "unlabelled": unlabelled}

        # On a phone the sidebar folds behind the menu button.
        page.goto("/portal/")
        sidebar = page.locator("#sidebar")
        expect(sidebar).to_be_hidden()
        page.get_by_role("button", name="Menu").click()
        expect(sidebar).to_be_visible()
        expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "true")
    finally:
        context.close()

    assert problems == {}
    assert errors == []
    assert network.bad_assets() == []
    assert network.off_platform() == []
    for name, _ in public + bakery.pages:
        assert (ARTIFACTS / f"portal-{name}-{PHONE}.png").stat().st_size > 10_000
