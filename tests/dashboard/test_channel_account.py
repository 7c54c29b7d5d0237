"""Owners' pages: the Papercups channel, billing, API keys and the team."""

from __future__ import annotations

import re

from django.core import mail

from billing.models import BillingAccount
from tenants.models import ApiKey, AuditEvent, Membership, User
from tests.fakes.crisp_server import FakeCrisp
from tests.fakes.papercups_server import FakePapercups
from webhooks.models import CrispConnection

# --- Channel ----------------------------------------------------------------------------------------------------


def test_connecting_papercups_checks_the_key_and_shows_the_snippet(owner_client, tenant, papercups: FakePapercups):
    account = papercups.add_account(str(tenant.papercups_account_id), bot_email="bot@acme.test")
    form = {"account_id": account.id, "api_key": "wrong-key", "base_url": papercups.url}

    refused = owner_client.post("/portal/channel/connect", form)
    connected = owner_client.post("/portal/channel/connect", {**form, "api_key": account.api_key})
    page = owner_client.get("/portal/channel")

    assert refused.status_code == 400
    refused_html = refused.content.decode()
    assert "Papercups rejected the API key" in refused_html
    assert "What to do:</strong> Create a new personal API key in Papercups" in refused_html
    assert connected.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.papercups_api_key, tenant.papercups_bot_user_id) == (account.api_key, account.bot.id)
    html = page.content.decode()
    assert "Connected to Papercups" in html
    assert account.api_key not in html  # write-only
    assert f"token: &quot;{account.id}&quot;" in html
    assert 'data-copy-target="widget-snippet"' in html


def test_the_connection_check_says_what_is_wrong_and_what_to_do(owner_client, tenant, papercups: FakePapercups):
    account = papercups.add_account(str(tenant.papercups_account_id), bot_email="bot@acme.test")
    owner_client.post(
        "/portal/channel/connect", {"account_id": account.id, "api_key": account.api_key, "base_url": papercups.url}
    )
    papercups.revoke_api_key(account.api_key)

    response = owner_client.post("/portal/channel/check", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="channel-status")

    html = response.content.decode()
    assert html.startswith('<div id="channel-status"')
    assert "The connection does not work" in html
    assert "Create a new personal API key in Papercups" in html


def test_a_new_webhook_url_is_shown_once_and_the_old_one_stops(owner_client, tenant):
    old_secret = tenant.webhook_secret

    response = owner_client.post("/portal/channel/webhook-secret")
    later = owner_client.get("/portal/channel").content.decode()

    tenant.refresh_from_db()
    assert tenant.webhook_secret != old_secret
    assert f"/papercups/webhook?token={tenant.webhook_secret}" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert tenant.webhook_secret not in later
    assert f"token={tenant.webhook_secret[:4]}…" in later


def test_connecting_crisp_checks_the_plugin_is_installed_and_shows_the_chatbox(owner_client, tenant, crisp: FakeCrisp):
    website = crisp.add_website("Acme", installed=False)

    refused = owner_client.post("/portal/channel/crisp/connect", {"website_id": website.website_id})
    crisp.install(website)
    connected = owner_client.post("/portal/channel/crisp/connect", {"website_id": website.website_id})
    page = owner_client.get("/portal/channel").content.decode()
    crisp.uninstall(website)
    checked = owner_client.post("/portal/channel/crisp/check", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="crisp-status")

    assert refused.status_code == 400
    assert "has not installed the Netia plugin" in refused.content.decode()
    assert connected.status_code == 302
    assert CrispConnection.objects.get(tenant=tenant).website_id == website.website_id
    (event,) = AuditEvent.objects.filter(tenant=tenant, action="channel.connected")  # the refusal records nothing
    assert (event.actor_kind, event.actor_label, event.details["channel"]) == ("user", tenant.owner_email, "crisp")
    assert "Connected to Crisp" in page
    assert (page.count('id="crisp-title"'), page.count('id="papercups-title"')) == (1, 1)
    assert "<title>Channel · Netia</title>" in page
    assert f"window.CRISP_WEBSITE_ID = &quot;{website.website_id}&quot;;" in page
    html = checked.content.decode()
    assert html.startswith('<div id="crisp-status"')
    assert "The connection does not work" in html


# --- Billing ----------------------------------------------------------------------------------------------------


def test_billing_shows_plan_trial_and_usage(owner_client):
    html = owner_client.get("/portal/billing").content.decode()

    assert "<strong>Trial</strong>" in html
    assert "Free trial" in html
    assert "0 of 200" in html  # AI replies
    assert "1 of 2" in html  # seats
    assert "Online payment is not set up on this Netia server yet." in html


def test_choosing_a_plan_goes_to_stripe_checkout(owner_client, tenant, stripe_fake, pro_plan, settings):
    settings.NETIA_PUBLIC_URL = "https://netia.example"
    page = owner_client.get("/portal/billing").content.decode()

    response = owner_client.post("/portal/billing/checkout", {"plan": pro_plan.pk})

    assert "Choose Pro" in page
    (session,) = stripe_fake.objects("checkout.session")
    assert (response.status_code, response["Location"]) == (302, session["url"])
    assert session["success_url"] == "https://netia.example/portal/billing?checkout=success"


def test_managing_billing_goes_to_the_stripe_portal(owner_client, tenant, stripe_fake, pro_plan):
    response = owner_client.post("/portal/billing/manage")

    assert response.status_code == 302
    assert response["Location"].startswith(stripe_fake.url)
    assert BillingAccount.objects.get(tenant=tenant).stripe_customer_id != ""


def test_billing_errors_come_back_as_a_message(owner_client):
    response = owner_client.post(
        "/portal/billing/checkout", {"plan": "7"}, HTTP_REFERER="http://testserver/portal/billing"
    )

    assert (response.status_code, response["Location"]) == (302, "http://testserver/portal/billing")
    messages = [str(m) for m in owner_client.get("/portal/billing").context["messages"]]
    assert messages == ["No such plan."]


# --- API keys ---------------------------------------------------------------------------------------------------


def test_an_api_key_is_shown_once_and_works_with_exactly_its_permissions(owner_client, client, tenant):
    response = owner_client.post("/portal/api-keys/new", {"name": "CRM sync", "permissions": ["leads:read"]})

    secret = re.search(r"nk_[0-9a-f]{12}_[A-Za-z0-9_-]+", response.content.decode()).group(0)
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(tenant=tenant, name="CRM sync")
    assert key.permissions == ["leads:read"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/customer/leads", headers=headers).status_code == 200
    assert client.get("/api/v1/customer/knowledge", headers=headers).status_code == 403
    assert secret not in owner_client.get("/portal/api-keys").content.decode()

    owner_client.post(f"/portal/api-keys/{key.pk}/revoke")

    assert client.get("/api/v1/customer/leads", headers=headers).status_code == 401


def test_an_api_key_needs_a_name_and_a_permission(owner_client, tenant):
    response = owner_client.post("/portal/api-keys/new", {"name": "", "permissions": []})

    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"name", "permissions"}
    assert not ApiKey.objects.filter(tenant=tenant, name="").exists()


# --- Team -------------------------------------------------------------------------------------------------------


def test_owners_invite_change_roles_and_remove(owner_client, tenant, committed):
    invited = committed(owner_client.post, "/portal/team/invite", {"email": "bea@acme.test", "role": "member"})
    bea = Membership.objects.get(tenant=tenant, user__email="bea@acme.test")
    promoted = owner_client.post(f"/portal/team/{bea.pk}/role", {"role": "owner"})
    role_after_promotion = Membership.objects.get(pk=bea.pk).role
    removed = owner_client.post(f"/portal/team/{bea.pk}/remove")

    assert [r.status_code for r in (invited, promoted, removed)] == [302, 302, 302]
    assert role_after_promotion == "owner"
    assert not Membership.objects.filter(pk=bea.pk).exists()
    assert User.objects.filter(email="bea@acme.test").exists()  # the person stays, without this business
    (message,) = mail.outbox
    assert message.to == ["bea@acme.test"]


def test_the_last_owner_cannot_leave_or_step_down(owner_client, tenant):
    me = Membership.objects.get(tenant=tenant, role="owner")
    referer = {"HTTP_REFERER": "http://testserver/portal/team"}

    owner_client.post(f"/portal/team/{me.pk}/role", {"role": "member"}, **referer)
    owner_client.post(f"/portal/team/{me.pk}/remove", **referer)

    assert Membership.objects.get(pk=me.pk).role == "owner"
    messages = [str(m) for m in owner_client.get("/portal/team").context["messages"]]
    assert messages == ["The team needs at least one owner: make someone else owner first."] * 2


def test_an_invitation_beyond_the_plans_seats_is_refused_beside_the_field(owner_client, member, tenant):
    response = owner_client.post("/portal/team/invite", {"email": "third@acme.test", "role": "member"})

    assert response.status_code == 400
    assert response.context["form"].errors["email"] == ["The plan's limit is reached. Upgrade the plan to add more."]
    assert Membership.objects.filter(tenant=tenant).count() == 2
