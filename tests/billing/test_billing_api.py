"""/api/v1/customer/billing…: status, plans, Checkout and portal sessions through the real stripe client
against the fake Stripe server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from djstripe.models import Customer

from billing.models import BillingAccount, Plan, UsagePeriod
from billing.services import trial_extend
from tenants.audit import SYSTEM
from tenants.services import api_key_create
from tests.billing.factories import PlanFactory
from tests.fakes.stripe_server import FakeStripe


def _month_start() -> datetime:
    return timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- status -------------------------------------------------------------------------------------------------------
def test_status_of_a_trialing_tenant(api, tenant, settings):
    settings.STRIPE_SECRET_KEY = ""
    trial_end = datetime(2099, 1, 31, 12, 0, tzinfo=UTC)
    trial_extend(tenant=tenant, until=trial_end, actor=SYSTEM)
    start = _month_start()
    UsagePeriod.objects.create(tenant=tenant, period_start=start, period_end=start + timedelta(days=28), ai_replies=7)

    response = api("get", "")

    assert response.status_code == 200
    body = response.json()
    next_month = (start + timedelta(days=32)).replace(day=1)
    assert body == {
        "status": "trialing",
        "trial_ends_at": "2099-01-31T12:00:00Z",
        "plan": {
            "id": Plan.objects.get(code="trial").pk,
            "code": "trial",
            "name": "Trial",
            "ai_replies_per_month": 200,
            "knowledge_articles_max": 20,
            "team_seats": 2,
        },
        "usage": {
            "period_start": _iso(start),
            "period_end": _iso(next_month),
            "ai_replies": 7,
            "ai_replies_limit": 200,
        },
        "bot_access": {"allowed": True, "reason": ""},
        "subscription": None,
        "billing_enabled": False,
    }


def test_status_says_why_the_bot_is_off(api, tenant):
    trial_extend(tenant=tenant, until=timezone.now() - timedelta(minutes=1), actor=SYSTEM)

    body = api("get", "").json()

    assert body["bot_access"] == {"allowed": False, "reason": "trial_ended"}


def test_plans_lists_the_purchasable_plans(api, pro_plan):
    PlanFactory.create(code="legacy", ai_replies_per_month=5)

    response = api("get", "/plans")

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": pro_plan.pk,
            "code": "pro",
            "name": "Pro",
            "ai_replies_per_month": 1000,
            "knowledge_articles_max": 200,
            "team_seats": 5,
            "price_id": pro_plan.price_id,
            "unit_amount": 1900,
            "currency": "eur",
            "interval": "month",
        }
    ]


# --- Checkout -----------------------------------------------------------------------------------------------------
def test_checkout_creates_the_customer_once_and_returns_the_hosted_page(api, tenant, pro_plan, stripe_fake: FakeStripe):
    trial_extend(tenant=tenant, until=timezone.now() + timedelta(days=5, hours=3), actor=SYSTEM)

    first = api("post", "/checkout", {"plan_id": pro_plan.pk})
    second = api("post", "/checkout", {"price_id": pro_plan.price_id, "return_url": "https://acme.test/settings"})

    assert (first.status_code, second.status_code) == (201, 201)
    sessions = stripe_fake.objects("checkout.session")
    assert [s["id"] for s in sessions] == [first.json()["id"], second.json()["id"]]
    assert first.json() == {"id": sessions[0]["id"], "url": f"{stripe_fake.url}/c/pay/{sessions[0]['id']}"}
    (stripe_customer,) = stripe_fake.objects("customer")
    assert (stripe_customer["email"], stripe_customer["name"]) == ("owner@acme.test", "Acme Test Shop")
    assert stripe_customer["metadata"] == {"djstripe_subscriber": str(tenant.pk)}
    customer = Customer.objects.get()
    assert (customer.id, customer.subscriber, customer.email) == (stripe_customer["id"], tenant, "owner@acme.test")
    assert BillingAccount.objects.get(tenant=tenant).stripe_customer_id == stripe_customer["id"]
    assert [s["customer"] for s in sessions] == [stripe_customer["id"]] * 2
    assert (sessions[0]["success_url"], sessions[0]["cancel_url"]) == (
        "https://portal.netia.test/billing?checkout=success",
        "https://portal.netia.test/billing?checkout=canceled",
    )
    assert sessions[1]["success_url"] == "https://acme.test/settings?checkout=success"
    assert (sessions[0]["client_reference_id"], sessions[0]["metadata"]) == (
        str(tenant.pk),
        {"netia_tenant_id": str(tenant.pk)},
    )
    (create,) = stripe_fake.requests_to("POST", "/v1/checkout/sessions")[:1]
    form = create.form()
    assert form["line_items"] == [{"price": pro_plan.price_id, "quantity": "1"}]
    # Five whole days of Netia's trial are left: they carry over as a Stripe trial.
    assert form["subscription_data"] == {"metadata": {"netia_tenant_id": str(tenant.pk)}, "trial_period_days": "5"}
    assert len(stripe_fake.requests_to("POST", "/v1/customers")) == 1


def test_checkout_after_the_trial_has_no_stripe_trial(api, tenant, pro_plan, stripe_fake: FakeStripe):
    trial_extend(tenant=tenant, until=timezone.now() - timedelta(days=1), actor=SYSTEM)

    assert api("post", "/checkout", {"plan_id": pro_plan.pk}).status_code == 201

    (create,) = stripe_fake.requests_to("POST", "/v1/checkout/sessions")
    assert create.form()["subscription_data"] == {"metadata": {"netia_tenant_id": str(tenant.pk)}}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"plan_id": 1, "price_id": "price_x"}, 400, "invalid"),
        ({"price_id": "price_unknown"}, 404, "not_found"),
        ({"plan_id": 999_999}, 404, "not_found"),
    ],
)
def test_checkout_refuses_bad_plans_without_calling_stripe(api, pro_plan, stripe_fake, body, status, code):
    stripe_fake.requests.clear()

    response = api("post", "/checkout", body)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert stripe_fake.requests == []
    assert Customer.objects.count() == 0


def test_checkout_of_an_unoffered_or_default_plan_is_404(api, pro_plan, stripe_fake):
    Plan.objects.filter(pk=pro_plan.pk).update(is_active=False)

    unoffered = api("post", "/checkout", {"plan_id": pro_plan.pk})
    default = api("post", "/checkout", {"plan_id": Plan.objects.get(is_default=True).pk})

    assert (unoffered.status_code, default.status_code) == (404, 404)
    assert stripe_fake.objects("checkout.session") == []


def test_checkout_while_subscribed_is_409(api, tenant, pro_plan, stripe_fake):
    BillingAccount.objects.filter(tenant=tenant).update(stripe_subscription_id="sub_1", stripe_status="past_due")

    response = api("post", "/checkout", {"plan_id": pro_plan.pk})

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "conflict",
        "message": "The tenant already has a subscription; change it in the billing portal.",
        "details": {"reason": "already_subscribed"},
    }
    assert stripe_fake.objects("checkout.session") == []


def test_checkout_when_stripe_fails_is_503_without_internals(api, pro_plan, stripe_fake):
    stripe_fake.inject_error("POST", "/v1/checkout/sessions", status=500, message="Internal db shard 7 down")

    response = api("post", "/checkout", {"plan_id": pro_plan.pk})

    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "service_unavailable",
        "message": "Billing is temporarily unavailable.",
        "details": {"reason": "stripe_error"},
    }
    assert stripe_fake.objects("checkout.session") == []


def test_checkout_without_stripe_configured_is_503(api, pro_plan, settings, stripe_fake):
    settings.STRIPE_SECRET_KEY = ""
    stripe_fake.requests.clear()

    response = api("post", "/checkout", {"plan_id": pro_plan.pk})

    assert response.status_code == 503
    assert response.json()["error"]["details"] == {"reason": "billing_not_configured"}
    assert stripe_fake.requests == []


# --- portal -------------------------------------------------------------------------------------------------------
def test_portal_returns_the_stripe_portal_url(api, tenant, stripe_fake: FakeStripe):
    response = api("post", "/portal", {"return_url": "https://acme.test/back"})
    default = api("post", "/portal")

    assert (response.status_code, default.status_code) == (201, 201)
    (customer,) = stripe_fake.objects("customer")
    sessions = stripe_fake.objects("billing_portal.session")
    assert [(s["customer"], s["return_url"]) for s in sessions] == [
        (customer["id"], "https://acme.test/back"),
        (customer["id"], "https://portal.netia.test/billing"),
    ]
    assert response.json() == {"id": sessions[0]["id"], "url": f"{stripe_fake.url}/p/session/{sessions[0]['id']}"}


def test_portal_rejects_a_bad_return_url(api, stripe_fake):
    response = api("post", "/portal", {"return_url": "javascript:alert(1)"})

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == ["return_url"]
    assert stripe_fake.objects("customer") == []


# --- authentication -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"), [("get", ""), ("get", "/plans"), ("post", "/checkout"), ("post", "/portal")]
)
def test_keys_without_the_billing_permission_are_403(api, tenant, stripe_fake, method, path):
    _, chat_only = api_key_create(tenant=tenant, name="Chat", permissions=["chat"], actor=SYSTEM)

    response = api(method, path, {}, key=chat_only)

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "This API key lacks the permission.",
        "details": {"required": "billing"},
    }
    assert stripe_fake.requests == []


def test_missing_or_public_credentials_are_401(client, tenant):
    missing = client.get("/api/v1/customer/billing")
    chat_token = client.get("/api/v1/customer/billing", HTTP_AUTHORIZATION=f"Bearer {tenant.public_token}")

    assert (missing.status_code, chat_token.status_code) == (401, 401)
    assert missing.json()["error"]["code"] == "unauthenticated"


def test_checkout_refuses_when_stripe_has_a_subscription_whose_webhooks_never_came(api, tenant, pro_plan, stripe_fake):
    session = api("post", "/checkout", {"plan_id": pro_plan.pk}).json()
    stripe_fake.complete_checkout(session["id"])  # paid; the webhooks are lost

    response = api("post", "/checkout", {"plan_id": pro_plan.pk})

    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"reason": "already_subscribed"}
    account = BillingAccount.objects.get(tenant=tenant)
    assert (account.stripe_status, account.plan.code) == ("trialing", "pro")  # synced from Stripe on the way
    assert len(stripe_fake.objects("checkout.session")) == 1


def test_a_new_checkout_expires_the_earlier_open_one(api, pro_plan, stripe_fake):
    first = api("post", "/checkout", {"plan_id": pro_plan.pk}).json()
    second = api("post", "/checkout", {"plan_id": pro_plan.pk}).json()

    assert [s["status"] for s in (stripe_fake.get(first["id"]), stripe_fake.get(second["id"]))] == ["expired", "open"]
    with pytest.raises(ValueError, match="expired, not open"):
        stripe_fake.complete_checkout(first["id"])  # the old page can no longer create a subscription
