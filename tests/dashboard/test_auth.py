"""Sign-up, magic-link sign-in (django-sesame), rate limits and sign-out."""

from __future__ import annotations

import re
import time
import types
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import Client

from dashboard.portal import SESSION_TENANT_KEY
from tenants.models import Membership, Tenant, User
from tenants.services import login_link_url

LINK_RE = re.compile(r"https?://\S+/login/link\?\S+")


def link_in(message: mail.EmailMessage) -> str:
    """The sign-in link of an email, as a path with its query (the test client's form)."""
    (url,) = set(LINK_RE.findall(str(message.body)))
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def sign_in_with(client: Client, path: str):
    """Open a sign-in link and press its button, as a person does."""
    page = client.get(path)
    assert page.status_code == 200
    query = parse_qs(urlsplit(path).query)
    data = {"token": query["token"][0], "next": query.get("next", [""])[0], "tenant": query.get("tenant", [""])[0]}
    return client.post("/login/link", data)


def test_signup_creates_the_business_and_emails_a_link_to_the_setup_checklist(client, db, session_tenants, committed):
    response = committed(client.post, "/signup", {"name": "Crumb & Co", "email": "Ana@Crumb.test"})

    assert response.status_code == 200
    assert b"Check your email" in response.content
    tenant = Tenant.objects.get(name="Crumb & Co")
    assert [(m.user.email, m.role) for m in tenant.memberships.select_related("user")] == [("ana@crumb.test", "owner")]
    (message,) = mail.outbox
    assert (message.to, message.subject) == (["ana@crumb.test"], "Welcome to Netia: your sign-in link")
    link = link_in(message)
    assert parse_qs(urlsplit(link).query)["next"] == ["/portal/setup"]

    signed_in = sign_in_with(client, link)
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/portal/setup")
    setup = client.get("/portal/setup")
    assert setup.status_code == 200
    assert b"Set up Crumb &amp; Co" in setup.content
    assert b"0 of 5 done" in setup.content
    assert client.session[SESSION_TENANT_KEY] == tenant.pk


@pytest.mark.parametrize(
    ("data", "field"),
    [({"name": "", "email": "a@b.test"}, "name"), ({"name": "Shop", "email": "not-an-email"}, "email")],
)
def test_signup_with_bad_input_says_why_and_creates_nothing(client, db, session_tenants, data, field, committed):
    before = Tenant.objects.count()

    response = committed(client.post, "/signup", data)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert Tenant.objects.count() == before
    assert mail.outbox == []


def test_login_answers_the_same_whether_or_not_the_email_exists(client, owner, committed):
    known = committed(client.post, "/login", {"email": "OWNER@acme.test"})
    known_body = known.content.replace(b"owner@acme.test", b"EMAIL")
    unknown = committed(client.post, "/login", {"email": "nobody@acme.test"})
    unknown_body = unknown.content.replace(b"nobody@acme.test", b"EMAIL")

    assert (known.status_code, unknown.status_code) == (200, 200)
    csrf = re.compile(rb"[A-Za-z0-9]{64}")  # the CSRF tokens differ per request
    assert csrf.sub(b"CSRF", known_body) == csrf.sub(b"CSRF", unknown_body)
    (message,) = mail.outbox
    assert (message.to, message.subject) == (["owner@acme.test"], "Your Netia sign-in link")


def test_an_inactive_user_gets_no_link(client, owner, committed):
    User.objects.filter(pk=owner.pk).update(is_active=False)

    assert committed(client.post, "/login", {"email": "owner@acme.test"}).status_code == 200
    assert mail.outbox == []


def test_a_link_signs_in_once_then_the_session_lasts(client, owner, committed):
    committed(client.post, "/login", {"email": "owner@acme.test"})
    link = link_in(mail.outbox[0])

    first = sign_in_with(client, link)
    again = Client().get(link)

    assert (first.status_code, first["Location"]) == (302, "/portal/")
    assert client.get("/portal/").status_code == 200
    assert again.status_code == 400
    assert b"This link has expired" in again.content


def test_opening_a_link_does_not_spend_it_only_the_button_does(client, owner):
    link = link_in_for(owner)
    token = parse_qs(urlsplit(link).query)["token"][0]

    assert client.get(link).status_code == 200
    assert client.get(link).status_code == 200  # a mail scanner's visit leaves it usable
    assert client.post("/login/link", {"token": token}).status_code == 302
    assert Client().post("/login/link", {"token": token}).status_code == 400


def link_in_for(user: User, **kwargs) -> str:
    parts = urlsplit(login_link_url(user=user, **kwargs))
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize(("minutes", "status"), [(14, 200), (16, 400)])
def test_a_link_expires_after_fifteen_minutes(client, owner, monkeypatch, minutes, status):
    link = link_in_for(owner)
    later = time.time() + minutes * 60
    monkeypatch.setattr("sesame.tokens_v2.time", types.SimpleNamespace(time=lambda: later))

    assert client.get(link).status_code == status


def test_a_link_never_redirects_off_site(client, owner):
    token = parse_qs(urlsplit(link_in_for(owner)).query)["token"][0]

    response = client.post("/login/link", {"token": token, "next": "//evil.example/portal/"})

    assert (response.status_code, response["Location"]) == (302, "/portal/")


def test_a_forged_token_is_refused(client, owner):
    response = client.post("/login/link", {"token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"})

    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_a_link_for_another_business_opens_that_business(client, owner, tenant, other_tenant):
    Membership.objects.create(user=owner, tenant=other_tenant, role=Membership.Role.MEMBER)
    link = link_in_for(owner, tenant=other_tenant)

    sign_in_with(client, link)

    assert client.session[SESSION_TENANT_KEY] == other_tenant.pk
    assert b"Globex Test Clinic" in client.get("/portal/").content


def test_login_is_rate_limited_per_email_whether_or_not_it_exists(client, owner, settings, committed):
    settings.PORTAL_LOGIN_RATE_PER_EMAIL = "2/h"

    known = [committed(client.post, "/login", {"email": "owner@acme.test"}).status_code for _ in range(3)]
    unknown = [client.post("/login", {"email": "ghost@acme.test"}).status_code for _ in range(3)]
    other = client.post("/login", {"email": "third@acme.test"}).status_code

    assert (known, unknown, other) == ([200, 200, 429], [200, 200, 429], 200)
    assert len(mail.outbox) == 2


def test_login_is_rate_limited_per_ip(client, owner, settings):
    settings.PORTAL_LOGIN_RATE_PER_IP = "3/h"

    statuses = [client.post("/login", {"email": f"person{i}@acme.test"}).status_code for i in range(4)]
    elsewhere = client.post("/login", {"email": "owner@acme.test"}, REMOTE_ADDR="10.9.8.7").status_code

    assert (statuses, elsewhere) == ([200, 200, 200, 429], 200)


def test_signup_is_rate_limited_per_ip(client, db, session_tenants, settings):
    settings.PORTAL_SIGNUP_RATE_PER_IP = "0/h"
    before = Tenant.objects.count()

    response = client.post("/signup", {"name": "Spam shop", "email": "spam@spam.test"})

    assert (response.status_code, response["Retry-After"]) == (429, "600")
    assert Tenant.objects.count() == before


def test_logout_ends_the_session(owner_client):
    assert owner_client.get("/portal/").status_code == 200

    response = owner_client.post("/logout")

    assert (response.status_code, response["Location"]) == (302, "/login")
    portal = owner_client.get("/portal/")
    assert (portal.status_code, portal["Location"]) == (302, "/login?next=/portal/")
