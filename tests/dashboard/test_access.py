"""Who may open what: anonymous visitors, members, owners, other businesses' ids, the business switcher."""

from __future__ import annotations

import uuid

import pytest
from django.http import HttpResponse
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, path
from django_tenants.utils import tenant_context

from chat.models import Conversation, KnowledgeArticle, Lead
from dashboard.portal import SESSION_TENANT_KEY, PortalView
from netia.tenancy import current_schema
from tenants.audit import SYSTEM
from tenants.models import ApiKey, Membership, User
from tenants.services import api_key_create
from tests.dashboard.conftest import signed_in

OWNER_ONLY = ["/portal/billing", "/portal/api-keys", "/portal/team", "/portal/channel", "/portal/activity"]
TEAM_PAGES = [
    "/portal/",
    "/portal/setup",
    "/portal/conversations",
    "/portal/leads",
    "/portal/knowledge",
    "/portal/knowledge/new",
    "/portal/bot",
]


def _portal_patterns() -> list[tuple[str, URLPattern]]:
    """Every URL pattern under /portal/ with a concrete path (placeholder ids filled in)."""
    found: list[tuple[str, URLPattern]] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif route.startswith("portal/"):
                concrete = route.replace("<uuid:public_id>", str(uuid.uuid4())).replace(
                    "<uuid:key_id>", str(uuid.uuid4())
                )
                for name in ("lead_id", "article_id", "membership_id"):
                    concrete = concrete.replace(f"<int:{name}>", "999999")
                found.append(("/" + concrete, p))

    walk(get_resolver().url_patterns, "")
    return found


PORTAL = _portal_patterns()


def test_the_portal_has_every_page_of_the_issue():
    paths = {p for p, _ in PORTAL}
    for page in [*OWNER_ONLY, *TEAM_PAGES]:
        assert page in paths
    assert len(PORTAL) == 36  # every portal route is walked (a new page changes this count)


@pytest.mark.parametrize(("url", "pattern"), PORTAL, ids=[p for p, _ in PORTAL])
def test_every_portal_view_is_a_portal_view(url, pattern):
    view_class = getattr(pattern.callback, "view_class", None)
    assert isinstance(view_class, type)
    assert issubclass(view_class, PortalView)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", [p for p, _ in PORTAL])
def test_anonymous_visitors_are_sent_to_sign_in(client, db, url, method):
    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=/portal/")


def test_someone_in_no_business_gets_a_clear_page(client, db):
    client.force_login(User.objects.create_user(email="loner@nowhere.test"))

    response = client.get("/portal/")

    assert response.status_code == 403
    assert b"not part of a business" in response.content


def _rogue(request):  # a view someone forgot to make a PortalView
    return HttpResponse("secret")


class RogueUrls:
    urlpatterns = [path("portal/rogue", _rogue), *get_resolver().url_patterns]


def test_a_view_that_is_not_a_portal_view_is_refused(owner_client):
    with override_settings(ROOT_URLCONF=RogueUrls):
        response = owner_client.get("/portal/rogue")

    assert response.status_code == 403
    assert b"secret" not in response.content


@pytest.mark.parametrize("url", TEAM_PAGES)
def test_members_and_owners_open_the_team_pages(member_client, owner_client, url):
    assert member_client.get(url).status_code == 200
    assert owner_client.get(url).status_code == 200


@pytest.mark.parametrize("url", OWNER_ONLY)
def test_only_owners_open_billing_keys_channel_and_team(member_client, owner_client, url):
    refused = member_client.get(url)

    assert refused.status_code == 403
    assert b"Only owners can open this page" in refused.content
    assert owner_client.get(url).status_code == 200


def test_members_do_not_see_the_owners_links(member_client, owner_client):
    member_page = member_client.get("/portal/").content
    owner_page = owner_client.get("/portal/").content

    for link in OWNER_ONLY:
        assert f'href="{link}"'.encode() not in member_page
        assert f'href="{link}"'.encode() in owner_page


def test_a_member_cannot_act_as_an_owner(member_client, tenant, member):
    created = member_client.post("/portal/api-keys/new", {"name": "Mine", "permissions": ["chat"]})
    invited = member_client.post("/portal/team/invite", {"email": "friend@acme.test", "role": "owner"})
    own = Membership.objects.get(user=member, tenant=tenant)
    promoted = member_client.post(f"/portal/team/{own.pk}/role", {"role": "owner"})

    assert (created.status_code, invited.status_code, promoted.status_code) == (403, 403, 403)
    assert not ApiKey.objects.filter(tenant=tenant, name="Mine").exists()
    assert not User.objects.filter(email="friend@acme.test").exists()
    assert Membership.objects.get(pk=own.pk).role == "member"


def test_another_businesss_ids_are_not_found(owner_client, tenant, other_tenant, chat_in, lead_in):
    conversation = chat_in(other_tenant, "Hi from Globex", session="globex-1")
    lead = lead_in(other_tenant, session="globex-2", email="g@globex.test")
    with tenant_context(other_tenant):
        article = KnowledgeArticle.objects.create(title="Globex only", content="Secret")
    key, _ = api_key_create(tenant=other_tenant, name="Globex key", actor=SYSTEM)
    membership = Membership.objects.get(tenant=other_tenant, role="owner")
    with tenant_context(tenant):  # tenant A holds no rows with these ids
        assert not Lead.objects.filter(pk=lead.pk).exists()
        assert not KnowledgeArticle.objects.filter(pk=article.pk).exists()

    answers = [
        owner_client.get(f"/portal/conversations/{conversation.public_id}").status_code,
        owner_client.post(f"/portal/conversations/{conversation.public_id}/take-over").status_code,
        owner_client.get(f"/portal/conversations/{conversation.public_id}/export").status_code,
        owner_client.get(f"/portal/leads/{lead.pk}").status_code,
        owner_client.post(f"/portal/leads/{lead.pk}", {"status": "won", "notes": ""}).status_code,
        owner_client.get(f"/portal/knowledge/{article.pk}").status_code,
        owner_client.post(f"/portal/knowledge/{article.pk}/delete").status_code,
        owner_client.post(f"/portal/api-keys/{key.pk}/revoke").status_code,
        owner_client.post(f"/portal/team/{membership.pk}/role", {"role": "member"}).status_code,
        owner_client.post(f"/portal/team/{membership.pk}/remove").status_code,
    ]

    assert answers == [404] * 10
    with tenant_context(other_tenant):
        assert Conversation.objects.get(pk=conversation.pk).status == "bot"
        assert Lead.objects.get(pk=lead.pk).status == "new"
        assert KnowledgeArticle.objects.filter(pk=article.pk).exists()
    key.refresh_from_db()
    assert key.revoked_at is None
    assert Membership.objects.get(pk=membership.pk).role == "owner"


def test_the_switcher_changes_business_within_the_users_memberships(owner, tenant, other_tenant):
    Membership.objects.create(user=owner, tenant=other_tenant, role=Membership.Role.MEMBER)
    client = signed_in(owner, tenant)

    switched = client.post("/portal/switch", {"tenant": other_tenant.pk})
    page = client.get("/portal/")

    assert switched.status_code == 302
    assert b"Globex Test Clinic" in page.content
    assert page.context["request"].portal.role == "member"
    assert client.get("/portal/billing").status_code == 403  # a member there


def test_the_switcher_refuses_a_business_the_user_is_not_in(owner_client, other_tenant, tenant):
    owner_client.post("/portal/switch", {"tenant": other_tenant.pk})

    assert owner_client.session[SESSION_TENANT_KEY] == tenant.pk
    assert owner_client.get("/portal/").context["request"].portal.tenant == tenant


def test_a_removed_member_loses_access_at_the_next_request(member, member_client, tenant):
    assert member_client.get("/portal/").status_code == 200

    Membership.objects.filter(user=member, tenant=tenant).delete()

    assert member_client.get("/portal/").status_code == 403


def test_a_session_naming_a_business_left_falls_back_to_one_still_joined(owner, tenant, other_tenant):
    client = signed_in(owner, other_tenant)  # the session names Globex; the owner is only in Acme

    page = client.get("/portal/")

    assert page.context["request"].portal.tenant == tenant
    assert client.session[SESSION_TENANT_KEY] == tenant.pk


def test_portal_pages_are_tenant_schema_bound(owner_client, other_tenant, chat_in):
    chat_in(other_tenant, "Only Globex has this conversation", session="globex-3", visitor_name="Gina")

    listing = owner_client.get("/portal/conversations").content

    assert b"Gina" not in listing
    assert b"No conversations yet" in listing


def test_the_schema_is_public_again_after_a_portal_request(owner_client):
    owner_client.get("/portal/knowledge")

    assert current_schema() == "public"
