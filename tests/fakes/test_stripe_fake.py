"""The Stripe fake, driven by the real `stripe` client (no Django): shapes, state, errors, events, signing.

Over ~400 lines on purpose: one contract test per Stripe behaviour the fake reproduces.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from .base import FakeServer, Reply, parse_form
from .stripe_server import API_VERSION, FakeStripe, event_payload, post_event, sign_payload

SECRET_KEY = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    """A fresh fake with the global stripe client pointed at it (no retries, so errors surface at once)."""
    server = FakeStripe(api_key=SECRET_KEY)
    server.start()
    monkeypatch.setattr(stripe, "api_key", SECRET_KEY)
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    """A plain local server standing in for Netia's webhook endpoint."""
    server = FakeServer()
    server.route("POST", "/hook", lambda request: Reply(200, {"received": True}))
    server.start()
    yield server
    server.stop()


def _checkout(fake: FakeStripe, price_id: str, **extra: Any) -> stripe.checkout.Session:
    """A subscription-mode Checkout Session for one unit of `price_id`."""
    return stripe.checkout.Session.create(
        mode="subscription",
        line_items=[{"price": price_id, "quantity": 1}],
        success_url="https://netia.test/billing/done?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://netia.test/billing",
        **extra,
    )


def test_parse_form_builds_nested_dicts_and_indexed_lists() -> None:
    body = "a[b][c]=x&items[1][price]=p2&items[0][price]=p1&items[0][quantity]=2&expand[]=e1&expand[]=e2&m[k]="

    assert parse_form(body) == {
        "a": {"b": {"c": "x"}},
        "items": [{"price": "p1", "quantity": "2"}, {"price": "p2"}],
        "expand": ["e1", "e2"],
        "m": {"k": ""},
    }


def test_customer_create_update_and_list(fake: FakeStripe) -> None:
    customer = stripe.Customer.create(email="owner@acme.test", name="Acme", metadata={"tenant_id": "7"})
    updated = stripe.Customer.modify(customer.id, metadata={"tenant_id": "", "plan": "pro"}, name="Acme GmbH")
    found = stripe.Customer.list(email="owner@acme.test")

    assert customer.id.startswith("cus_")
    assert (customer.object, customer.email, customer.name, customer.livemode) == (
        "customer",
        "owner@acme.test",
        "Acme",
        False,
    )
    assert customer.to_dict()["metadata"] == {"tenant_id": "7"}
    assert updated.to_dict()["metadata"] == {"plan": "pro"}
    assert [c.id for c in found.data] == [customer.id]
    events = fake.take_events()
    assert [e["type"] for e in events] == ["customer.created", "customer.updated"]
    assert events[1]["data"]["previous_attributes"] == {"metadata": {"tenant_id": "7"}, "name": "Acme"}


def test_unknown_customer_is_resource_missing(fake: FakeStripe) -> None:
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe.Customer.retrieve("cus_doesnotexist")

    assert (error.value.http_status, error.value.code, error.value.param) == (404, "resource_missing", "id")
    assert error.value.json_body == {
        "error": {
            "code": "resource_missing",
            "doc_url": "https://docs.stripe.com/error-codes/resource-missing",
            "message": "No such customer: 'cus_doesnotexist'",
            "param": "id",
            "type": "invalid_request_error",
        }
    }


def test_unknown_parameter_is_rejected_like_stripe(fake: FakeStripe) -> None:
    typo: dict[str, Any] = {"emial": "typo@acme.test"}

    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe.Customer.create(**typo)

    assert (error.value.http_status, error.value.code, error.value.param) == (400, "parameter_unknown", "emial")
    assert fake.objects("customer") == []


def test_nested_parameters_enums_and_expand_paths_are_checked_against_stripe_pythons_types(fake: FakeStripe) -> None:
    _, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    customer = stripe.Customer.create(email="a@acme.test")

    with pytest.raises(stripe.InvalidRequestError) as nested:
        _checkout(fake, price["id"], subscription_data={"trial_days": 3})  # the field is trial_period_days
    with pytest.raises(stripe.InvalidRequestError) as enum:
        _checkout(fake, price["id"], billing_address_collection="sometimes")
    with pytest.raises(stripe.InvalidRequestError) as integer:
        _checkout(fake, price["id"], subscription_data={"trial_period_days": "three"})
    with pytest.raises(stripe.InvalidRequestError) as listed_status:
        stripe.Subscription.list(customer=customer.id, status="live")
    with pytest.raises(stripe.InvalidRequestError) as not_expandable:
        stripe.Subscription.list(customer=customer.id, expand=["data.status"])
    with pytest.raises(stripe.InvalidRequestError) as unknown_field:
        stripe.Customer.retrieve(customer.id, expand=["subscription"])

    assert (nested.value.http_status, nested.value.code, nested.value.param) == (
        400,
        "parameter_unknown",
        "subscription_data[trial_days]",
    )
    assert (enum.value.param, enum.value.user_message) == (
        "billing_address_collection",
        "Invalid billing_address_collection: must be one of auto, required",
    )
    assert (integer.value.param, integer.value.user_message) == (
        "subscription_data[trial_period_days]",
        "Invalid integer: three",
    )
    assert listed_status.value.param == "status"
    assert not_expandable.value.user_message == "This property cannot be expanded (data.status)."
    assert unknown_field.value.user_message == "This property cannot be expanded (subscription)."
    assert fake.objects("checkout.session") == []
    # What the SDK declares expandable, or Stripe documents as includable, is accepted.
    assert stripe.Subscription.list(customer=customer.id, expand=["data.items.data.price.product"]).data == []
    assert stripe.Customer.retrieve(customer.id, expand=["subscriptions", "sources"]).subscriptions.data == []


def test_only_stripes_real_routes_are_served(fake: FakeStripe) -> None:
    with pytest.raises(stripe.InvalidRequestError) as gone:
        stripe.Charge.list()

    assert (gone.value.http_status, gone.value.user_message.split(" (")[0]) == (404, "Unrecognized request URL")


def test_price_list_expands_products(fake: FakeStripe) -> None:
    pro, pro_price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {"plan": "pro"})
    basic, basic_price = fake.seed_product_with_price("Basic", 900, "eur", "month", {"plan": "basic"})

    prices = stripe.Price.list(active=True, expand=["data.product"])
    only_pro = stripe.Price.list(product=pro["id"])

    listed = prices.to_dict()["data"]
    assert [(p["id"], p["product"]["name"], p["unit_amount"], p["currency"]) for p in listed] == [
        (basic_price["id"], "Basic", 900, "eur"),
        (pro_price["id"], "Pro", 1900, "eur"),
    ]
    assert listed[0]["recurring"] == {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
    assert [p.id for p in only_pro.data] == [pro_price["id"]]
    assert stripe.Product.retrieve(basic["id"]).default_price == basic_price["id"]
    assert stripe.Product.retrieve(pro["id"]).to_dict()["metadata"] == {"plan": "pro"}


def test_list_pagination_follows_stripe_order(fake: FakeStripe) -> None:
    ids = [stripe.Customer.create(email=f"c{n}@acme.test").id for n in range(3)]

    first_page = stripe.Customer.list(limit=2)
    everything = [c.id for c in first_page.auto_paging_iter()]

    assert ([c.id for c in first_page.data], first_page.has_more) == (ids[:0:-1], True)
    assert everything == ids[::-1]


def test_checkout_session_has_hosted_url_and_amounts(fake: FakeStripe) -> None:
    _, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    customer = stripe.Customer.create(email="owner@acme.test")

    session = _checkout(fake, price["id"], customer=customer.id, client_reference_id="tenant-7")
    line_items = stripe.checkout.Session.list_line_items(session.id)

    assert session.id.startswith("cs_test_")
    assert session.url == f"{fake.url}/c/pay/{session.id}"
    assert (session.status, session.mode, session.payment_status) == ("open", "subscription", "unpaid")
    assert (session.customer, session.client_reference_id, session.amount_total) == (customer.id, "tenant-7", 1900)
    assert [(i["price"]["id"], i["quantity"], i["amount_total"]) for i in line_items.to_dict()["data"]] == [
        (price["id"], 1, 1900)
    ]


def test_checkout_session_validation_errors(fake: FakeStripe) -> None:
    _, one_time = fake.seed_product_with_price("Setup fee", 5000, "eur", None, {})

    with pytest.raises(stripe.InvalidRequestError) as missing_mode:
        stripe.checkout.Session.create(success_url="https://netia.test/ok")
    with pytest.raises(stripe.InvalidRequestError) as unknown_price:
        _checkout(fake, "price_unknown")
    with pytest.raises(stripe.InvalidRequestError) as not_recurring:
        _checkout(fake, one_time["id"])

    assert (missing_mode.value.code, missing_mode.value.param) == ("parameter_missing", "mode")
    assert (unknown_price.value.http_status, unknown_price.value.param) == (404, "line_items[0][price]")
    assert (not_recurring.value.http_status, not_recurring.value.param) == (400, "line_items[0][price]")
    assert fake.objects("checkout.session") == []


def test_complete_checkout_subscribes_and_emits_events(fake: FakeStripe) -> None:
    product, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    session = _checkout(fake, price["id"], customer_email="owner@acme.test", subscription_data={"metadata": {"t": "7"}})

    events = fake.complete_checkout(session.id)

    assert [e["type"] for e in events] == [
        "customer.created",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ]
    done = stripe.checkout.Session.retrieve(session.id).to_dict()
    subscription = stripe.Subscription.retrieve(done["subscription"]).to_dict()
    invoice = stripe.Invoice.retrieve(subscription["latest_invoice"]).to_dict()
    assert (done["status"], done["payment_status"], done["customer"]) == ("complete", "paid", subscription["customer"])
    assert stripe.Customer.retrieve(done["customer"]).email == "owner@acme.test"
    assert (subscription["status"], subscription["metadata"]) == ("active", {"t": "7"})
    assert [(i["price"]["id"], i["price"]["product"], i["quantity"]) for i in subscription["items"]["data"]] == [
        (price["id"], product["id"], 1)
    ]
    assert (invoice["status"], invoice["amount_paid"], invoice["billing_reason"]) == (
        "paid",
        1900,
        "subscription_create",
    )
    assert invoice["parent"]["subscription_details"]["subscription"] == subscription["id"]
    assert stripe.Event.retrieve(events[-1]["id"]).data.object.id == session.id
    assert events[1]["api_version"] == API_VERSION


def test_complete_checkout_with_trial_is_trialing_and_free(fake: FakeStripe) -> None:
    _, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    customer = stripe.Customer.create(email="owner@acme.test")
    session = _checkout(fake, price["id"], customer=customer.id, subscription_data={"trial_period_days": 14})
    fake.freeze_time(1_767_225_600)  # 2026-01-01T00:00:00Z

    events = fake.complete_checkout(session.id)

    subscription = events[0]["data"]["object"]
    assert events[0]["type"] == "customer.subscription.created"
    assert (subscription["status"], subscription["trial_end"]) == ("trialing", 1_767_225_600 + 14 * 86_400)
    assert subscription["items"]["data"][0]["current_period_end"] == 1_767_225_600 + 14 * 86_400
    assert events[-1]["data"]["object"]["payment_status"] == "no_payment_required"
    assert stripe.Invoice.list(customer=customer.id).data[0].amount_paid == 0


def test_billing_portal_session(fake: FakeStripe) -> None:
    customer = stripe.Customer.create(email="owner@acme.test")

    portal = stripe.billing_portal.Session.create(customer=customer.id, return_url="https://netia.test/billing")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        stripe.billing_portal.Session.create(customer="cus_unknown")

    assert portal.id.startswith("bps_")
    assert (portal.url, portal.customer, portal.return_url) == (
        f"{fake.url}/p/session/{portal.id}",
        customer.id,
        "https://netia.test/billing",
    )
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "customer")


def test_subscription_cancel_at_period_end_then_now(fake: FakeStripe) -> None:
    _, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    events = fake.complete_checkout(_checkout(fake, price["id"], customer_email="o@acme.test").id)
    sub_id = events[1]["data"]["object"]["id"]
    fake.take_events()

    scheduled = stripe.Subscription.modify(sub_id, cancel_at_period_end=True)
    canceled = stripe.Subscription.cancel(sub_id)
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe.Subscription.cancel(sub_id)

    period_end = scheduled["items"].data[0].current_period_end
    assert (scheduled.status, scheduled.cancel_at_period_end, scheduled.cancel_at) == ("active", True, period_end)
    assert canceled.to_dict()["cancellation_details"] == {
        "comment": None,
        "feedback": None,
        "reason": "cancellation_requested",
    }
    assert canceled.status == "canceled"
    assert stripe.Subscription.retrieve(sub_id).status == "canceled"
    assert stripe.Subscription.list().data == []
    assert [s.id for s in stripe.Subscription.list(status="all").data] == [sub_id]
    assert again.value.code == "resource_missing"
    updated, deleted = fake.take_events()
    assert (updated["type"], deleted["type"]) == ("customer.subscription.updated", "customer.subscription.deleted")
    assert updated["data"]["previous_attributes"]["cancel_at_period_end"] is False


def test_period_end_ends_a_subscription_set_to_cancel(fake: FakeStripe) -> None:
    _, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    created = fake.complete_checkout(_checkout(fake, price["id"], customer_email="o@acme.test").id)[1]
    sub_id = created["data"]["object"]["id"]
    stripe.Subscription.modify(sub_id, cancel_at_period_end=True)

    events = fake.renew_subscription(sub_id)

    ended = stripe.Subscription.retrieve(sub_id)
    assert [e["type"] for e in events] == ["customer.subscription.deleted"]
    assert (ended.status, ended.ended_at) == ("canceled", ended.cancel_at)
    assert len(stripe.Invoice.list(subscription=sub_id).data) == 1


def test_plan_change_through_items(fake: FakeStripe) -> None:
    _, basic = fake.seed_product_with_price("Basic", 900, "eur", "month", {})
    _, pro = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    events = fake.complete_checkout(_checkout(fake, basic["id"], customer_email="o@acme.test").id)
    subscription = events[1]["data"]["object"]
    item_id = subscription["items"]["data"][0]["id"]

    changed = stripe.Subscription.modify(subscription["id"], items=[{"id": item_id, "price": pro["id"]}])

    assert [(i["id"], i["price"]["id"]) for i in changed.to_dict()["items"]["data"]] == [(item_id, pro["id"])]
    previous = fake.take_events()[-1]["data"]["previous_attributes"]
    assert previous["items"]["data"][0]["price"]["id"] == basic["id"]


def test_dunning_helpers(fake: FakeStripe) -> None:
    _, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    created = fake.complete_checkout(_checkout(fake, price["id"], customer_email="o@acme.test").id)[1]
    sub_id = created["data"]["object"]["id"]

    failed = fake.renew_subscription(sub_id, paid=False)
    unpaid = fake.set_subscription_status(sub_id, "unpaid")
    gone = fake.set_subscription_status(sub_id, "canceled")

    assert [e["type"] for e in failed] == [
        "invoice.created",
        "invoice.finalized",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    invoice = stripe.Invoice.retrieve(failed[2]["data"]["object"]["id"])
    assert (invoice.status, invoice.amount_due, invoice.amount_paid, invoice.attempt_count) == ("open", 1900, 0, 1)
    assert failed[3]["data"]["previous_attributes"]["status"] == "active"
    assert unpaid[0]["data"]["previous_attributes"] == {"status": "past_due"}
    assert (gone[0]["type"], stripe.Subscription.retrieve(sub_id).status) == (
        "customer.subscription.deleted",
        "canceled",
    )


def test_make_event_is_stored_and_listed(fake: FakeStripe) -> None:
    event = fake.make_event(
        "customer.subscription.updated",
        {"id": "sub_123", "object": "subscription", "status": "past_due"},
        previous_attributes={"status": "active"},
        created=1_700_000_000,
    )

    fetched = stripe.Event.retrieve(event["id"])
    listed = stripe.Event.list(type="customer.subscription.*")

    assert event["id"].startswith("evt_")
    assert fetched.to_dict() == event
    assert event["data"] == {
        "object": {"id": "sub_123", "object": "subscription", "status": "past_due"},
        "previous_attributes": {"status": "active"},
    }
    assert (event["created"], event["object"], event["livemode"]) == (1_700_000_000, "event", False)
    assert [e.id for e in listed.data] == [event["id"]]


def test_signature_is_accepted_by_stripe_and_tampering_is_not() -> None:
    secret = "whsec_test_secret"
    payload = event_payload({"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}})

    header = sign_payload(payload, secret)
    event = stripe.Webhook.construct_event(payload, header, secret)

    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace(b"evt_1", b"evt_2"), header, secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other")


def test_signature_format_is_t_and_v1() -> None:
    header = sign_payload(b'{"id": "evt_1"}', "whsec_abc", timestamp=1_700_000_000)

    expected = hmac.new(b"whsec_abc", b'1700000000.{"id": "evt_1"}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_post_event_and_deliver_send_verifiable_requests(fake: FakeStripe, receiver: FakeServer) -> None:
    endpoint = fake.add_webhook_endpoint(f"{receiver.url}/hook", enabled_events=["invoice.paid"])
    paid = fake.make_event("invoice.paid", {"id": "in_1", "object": "invoice"})
    failed = fake.make_event("invoice.payment_failed", {"id": "in_1", "object": "invoice"})

    status, body = post_event(f"{receiver.url}/hook", paid, endpoint["secret"])
    delivered = fake.deliver([paid, failed])

    assert (status, json.loads(body)) == (200, {"received": True})
    assert delivered == [(paid["id"], f"{receiver.url}/hook", 200)]
    for request in receiver.requests:
        event = stripe.Webhook.construct_event(request.body, request.headers["stripe-signature"], endpoint["secret"])
        assert event.id == paid["id"]


def test_idempotency_key_replays_the_first_response(fake: FakeStripe) -> None:
    first = stripe.Customer.create(email="a@acme.test", idempotency_key="tenant-7-customer")
    replay = stripe.Customer.create(email="a@acme.test", idempotency_key="tenant-7-customer")
    with pytest.raises(stripe.IdempotencyError):
        stripe.Customer.create(email="b@acme.test", idempotency_key="tenant-7-customer")

    assert replay.id == first.id
    assert [c["id"] for c in fake.objects("customer")] == [first.id]


def test_authentication(fake: FakeStripe) -> None:
    with pytest.raises(stripe.AuthenticationError):
        stripe.Customer.list(api_key="sk_test_wrongwrongwrongwrongwrong")
    basic = b64encode(f"{SECRET_KEY}:".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - local fake
        f"{fake.url}/v1/account", headers={"Authorization": f"Basic {basic}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local fake
        assert json.loads(response.read())["id"] == fake.account["id"]
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{fake.url}/v1/account", timeout=5)  # noqa: S310 - local fake
    assert anonymous.value.code == 401


def test_injected_error_surfaces_as_stripe_error(fake: FakeStripe) -> None:
    fake.inject_error("POST", "/v1/checkout/sessions", status=500, message="Stripe is down")

    with pytest.raises(stripe.APIError) as error:
        stripe.checkout.Session.create(mode="subscription")
    retry = stripe.checkout.Session.create(mode="setup", success_url="https://netia.test/ok")

    assert (error.value.http_status, error.value.user_message) == (500, "Stripe is down")
    assert retry.mode == "setup"


def test_hosted_checkout_page_completes_and_delivers(fake: FakeStripe, receiver: FakeServer) -> None:
    endpoint = fake.add_webhook_endpoint(f"{receiver.url}/hook")
    _, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {})
    session = _checkout(fake, price["id"], customer_email="owner@acme.test")
    assert session.url is not None

    with urllib.request.urlopen(session.url, timeout=5) as page:  # noqa: S310 - local fake
        html = page.read().decode()
    opener = urllib.request.build_opener(_NoRedirect)
    pay = urllib.request.Request(session.url, data=b"email=owner%40acme.test", method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(pay, timeout=5)

    assert "Pro: 19.00 EUR" in html
    assert redirect.value.code == 303
    assert redirect.value.headers["Location"] == f"https://netia.test/billing/done?session={session.id}"
    delivered = [json.loads(r.body)["type"] for r in receiver.requests]
    assert delivered[-1] == "checkout.session.completed"
    assert len(delivered) == 7
    assert stripe.checkout.Session.retrieve(session.id).status == "complete"
    assert endpoint["secret"].startswith("whsec_")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Let a test see the 303 itself."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
