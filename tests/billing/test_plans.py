"""Products and prices come from Stripe (dj-stripe's sync, models named); Plans map prices to limits."""

from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import CommandError, call_command
from djstripe.models import Price, Product

from billing.models import BillingAccount, Plan
from billing.selectors import plan_default_get, plan_quota_check
from netia.errors import PlanLimitExceeded
from tests.billing.conftest import STRIPE_KEY
from tests.fakes.stripe_server import FakeStripe


def test_sync_stores_products_and_prices_and_maps_plans_from_metadata(stripe_fake: FakeStripe, db):
    _, pro_price = stripe_fake.seed_product_with_price(
        "Pro",
        1900,
        "eur",
        "month",
        {"netia_plan": "pro", "ai_replies_per_month": "1000", "knowledge_articles_max": "200", "team_seats": "5"},
    )
    _, business_price = stripe_fake.seed_product_with_price(
        "Business", 4900, "eur", "month", {"netia_plan": "business", "ai_replies_per_month": "unlimited"}
    )
    stripe_fake.seed_product_with_price("Setup fee", 5000, "eur", None, {"netia_plan": "setup"})
    stripe_fake.seed_product_with_price("Merch", 900, "eur", "month", {})
    out = StringIO()

    call_command("billing_sync_plans", stdout=out)

    assert sorted(Product.objects.values_list("name", flat=True)) == ["Business", "Merch", "Pro", "Setup fee"]
    assert Price.objects.count() == 4
    plans = {p.code: p for p in Plan.objects.filter(is_default=False)}
    assert sorted(plans) == ["business", "pro"]
    pro, business = plans["pro"], plans["business"]
    assert (pro.name, pro.price_id, pro.is_active) == ("Pro", pro_price["id"], True)
    assert (pro.ai_replies_per_month, pro.knowledge_articles_max, pro.team_seats) == (1000, 200, 5)
    # Not all limits given: created, but not offered until staff set them.
    assert (business.price_id, business.ai_replies_per_month, business.is_active) == (business_price["id"], None, False)
    assert out.getvalue().splitlines()[-2:] == [
        f"plan business: price {business_price['id']} (not offered until its limits are set)",
        f"plan pro: price {pro_price['id']} (offered)",
    ]
    # dj-stripe was asked for the named models only (nothing reached Stripe's v2 accounts API).
    paths = {r.path for r in stripe_fake.requests}
    assert {"/v1/account", "/v1/products", "/v1/prices"} <= paths
    assert not [p for p in paths if p.startswith("/v2/")]


def test_resync_updates_limits_from_metadata_and_keeps_staff_edits_otherwise(stripe_fake: FakeStripe, pro_plan):
    Plan.objects.filter(pk=pro_plan.pk).update(team_seats=9, name="Renamed")
    stripe.Price.modify(
        pro_plan.price_id, metadata={"ai_replies_per_month": "1500", "team_seats": ""}, api_key=STRIPE_KEY
    )
    stripe.Product.modify(pro_plan.price.product_id, metadata={"team_seats": ""}, api_key=STRIPE_KEY)

    call_command("billing_sync_plans", stdout=StringIO())

    plan = Plan.objects.get(pk=pro_plan.pk)
    assert (plan.name, plan.ai_replies_per_month, plan.knowledge_articles_max, plan.team_seats) == (
        "Pro",
        1500,
        200,
        9,
    )
    assert Plan.objects.filter(is_default=False).count() == 1


def test_sync_refuses_without_a_stripe_key(db, settings):
    settings.STRIPE_SECRET_KEY = ""

    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY is not set"):
        call_command("billing_sync_plans", stdout=StringIO())


def test_default_plan_applies_without_a_subscription(tenant):
    default = plan_default_get()

    assert (default.code, default.is_default, default.price_id) == ("trial", True, None)
    assert (default.ai_replies_per_month, default.knowledge_articles_max, default.team_seats) == (200, 20, 2)


def test_quota_check_uses_the_plan_in_effect(tenant, pro_plan):
    plan_quota_check(tenant=tenant, resource="knowledge_articles", used=19)
    with pytest.raises(PlanLimitExceeded) as trial_full:
        plan_quota_check(tenant=tenant, resource="knowledge_articles", used=20)
    BillingAccount.objects.filter(tenant=tenant).update(plan=pro_plan)

    plan_quota_check(tenant=tenant, resource="knowledge_articles", used=20)
    with pytest.raises(PlanLimitExceeded) as seats_full:
        plan_quota_check(tenant=tenant, resource="team_seats", used=5)

    assert (trial_full.value.status_code, trial_full.value.code) == (402, "plan_limit_reached")
    assert trial_full.value.extra == {"resource": "knowledge_articles", "limit": 20, "plan": "trial"}
    assert seats_full.value.extra == {"resource": "team_seats", "limit": 5, "plan": "pro"}
