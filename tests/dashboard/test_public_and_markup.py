"""The public pages (landing, demo page) and the markup rules every page keeps: a strict Content-Security-
Policy can hold (no inline script, handler or style) and every control has a label."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from chat.models import KnowledgeArticle
from tenants.models import Tenant
from tenants.selectors import tenant_demo_slug
from tests.dashboard.test_access import OWNER_ONLY, TEAM_PAGES


def test_the_landing_page_leads_to_sign_up_and_sign_in(client, db):
    html = client.get("/").content.decode()

    assert 'href="/signup"' in html
    assert 'href="/login"' in html


def test_the_demo_page_chats_through_the_public_api(client, tenant):
    slug = tenant_demo_slug(tenant=tenant)

    response = client.get(f"/demo/{slug}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Acme Test Shop</h1>" in html
    assert f'data-chat-token="{tenant.chat_token}"' in html
    assert 'data-chat-url="/api/v1/chat"' in html
    assert "data-leads-url" not in html


@pytest.mark.parametrize("slug", ["no-such-shop-000000", "tenant-template", "..", "UPPER"])
def test_unknown_demo_pages_are_not_found(client, db, slug):
    assert client.get(f"/demo/{slug}/").status_code == 404


def test_a_suspended_business_has_no_demo_page(client, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(suspended_at=timezone.now())

    assert client.get(f"/demo/{tenant_demo_slug(tenant=tenant)}/").status_code == 404


class _Markup(HTMLParser):
    """Collects what a strict CSP would block and the form controls without a label."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self.labels: set[str] = set()
        self.controls: list[tuple[str, dict[str, str | None]]] = []
        self._in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes:
            self.inline_scripts += 1
        self.handlers += [f"{tag}[{name}]" for name in attributes if name.startswith("on")]
        if "style" in attributes or tag == "style":
            self.styles.append(tag)
        if tag == "label":
            self._in_label += 1
            if attributes.get("for"):
                self.labels.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea") and attributes.get("type") not in ("hidden", "submit"):
            self.controls.append((tag, {**attributes, "_wrapped": "1" if self._in_label else None}))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._in_label -= 1

    def unlabelled(self) -> list[str]:
        return [
            f"{tag}#{attrs.get('id') or attrs.get('name')}"
            for tag, attrs in self.controls
            if not (attrs["_wrapped"] or attrs.get("aria-label") or attrs.get("id") in self.labels)
        ]


PUBLIC = ["/", "/signup", "/login"]
PAGES = TEAM_PAGES + OWNER_ONLY


@pytest.fixture
def busy(tenant, chat_in, lead_in):
    """A business with something on every page."""
    conversation = chat_in(tenant, "How much is a cake?", intent="pricing", visitor_name="Ana")
    lead = lead_in(tenant, email="ana@example.com")
    with tenant_context(tenant):
        article = KnowledgeArticle.objects.create(title="Prices", content="Cakes from 35 euros.")
    return [
        f"/portal/conversations/{conversation.public_id}",
        f"/portal/leads/{lead.pk}",
        f"/portal/knowledge/{article.pk}",
        f"/demo/{tenant_demo_slug(tenant=tenant)}/",
    ]


def test_every_page_keeps_to_a_strict_csp_and_labels_every_control(client, owner_client, member, busy):
    problems = {}
    for url in PUBLIC + PAGES + busy:
        response = (client if url in PUBLIC else owner_client).get(url)
        assert response.status_code == 200, url
        markup = _Markup()
        markup.feed(response.content.decode())
        found = {
            "inline scripts": markup.inline_scripts,
            "handlers": markup.handlers,
            "styles": markup.styles,
            "unlabelled": markup.unlabelled(),
        }
        if any(found.values()):
            problems[url] = found

    assert problems == {}


def test_the_markup_check_sees_what_it_looks_for():
    markup = _Markup()
    markup.feed(
        '<script>x()</script><div style="color:red" onclick="y()"><input name="q"></div>'
        '<label for="e">E</label><input id="e"><label>W <input name="w"></label><input type="hidden" name="h">'
    )

    assert (markup.inline_scripts, markup.handlers, markup.styles, markup.unlabelled()) == (
        1,
        ["div[onclick]"],
        ["div"],
        ["input#q"],
    )
