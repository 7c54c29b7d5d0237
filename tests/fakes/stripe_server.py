"""A stateful fake of the Stripe API (the calls Netia and dj-stripe 2.11 make), served over real HTTP.

Point the real client at it with `stripe.api_base = fake.url` (dj-stripe reads that module global on every
call). Objects are rendered in the shape of API version `API_VERSION` whatever `Stripe-Version` asks for.
See STRIPE_NOTES.md beside this file for what dj-stripe calls and why each route exists.

    with FakeStripe() as fake:                       # or FakeStripe(api_key=...) to require one exact key
        monkeypatch.setattr(stripe, "api_base", fake.url)
        product, price = fake.seed_product_with_price("Pro", 1900, "eur", "month", {"plan": "pro"})
        ...                                          # Netia creates a Checkout Session through the real client
        events = fake.complete_checkout(session_id)  # Event dicts, also stored for GET /v1/events/:id
        body, signature = signed_request(events[1], endpoint_secret)   # for Django's test client

Over ~400 lines on purpose: a stateful Stripe (customers, products, prices, subscriptions, invoices, events,
signatures) is one unit whose routes share the state; STRIPE_NOTES.md maps each route to its caller.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import hmac
import html
import json
import random
import re
import string
import threading
import time
import urllib.error
import urllib.request
from base64 import b64decode
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import stripe as S
import stripe.params as P

from .base import FakeServer, RecordedRequest, Reply, parse_form
from .stripe_schema import ListOf, SchemaError, expand_check, params_check

API_VERSION = "2026-08-26.dahlia"
"""The version stripe 15.6.2 pins; dj-stripe 2.11's default (2026-05-27.dahlia) renders the same shapes."""

Obj = dict[str, Any]

SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
_ALPHABET = string.ascii_letters + string.digits
_DOC_URL = "https://docs.stripe.com/error-codes/"
_SECONDS_PER = {"day": 86_400, "week": 7 * 86_400}


class StripeApiError(Exception):
    """An error the fake answers with, rendered in Stripe's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param

    def body(self) -> Obj:
        """The JSON body Stripe sends for this error (keys it omits when unset are omitted here too)."""
        error: Obj = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = _DOC_URL + self.code.replace("_", "-")
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def _missing(label: str, object_id: str, param: str = "id") -> StripeApiError:
    """Stripe's 404 for an unknown id."""
    return StripeApiError(404, f"No such {label}: '{object_id}'", code="resource_missing", param=param)


def _invalid(message: str, param: str | None = None, code: str = "parameter_invalid") -> StripeApiError:
    """Stripe's 400 for a bad parameter value."""
    return StripeApiError(400, message, code=code, param=param)


def _required(param: str) -> StripeApiError:
    """Stripe's 400 for a missing required parameter."""
    return StripeApiError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


# -- webhook signing and delivery ---------------------------------------------------------------------
def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for `payload`: `t=<ts>,v1=<HMAC-SHA256 of "<ts>.<payload>">`."""
    ts = int(time.time()) if timestamp is None else timestamp
    signed = f"{ts}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def event_payload(event: Obj) -> bytes:
    """The exact bytes Stripe POSTs for an event (pretty-printed JSON)."""
    return json.dumps(event, indent=2).encode()


def signed_request(event: Obj, secret: str, timestamp: int | None = None) -> tuple[bytes, str]:
    """The body and `Stripe-Signature` header for delivering `event`, e.g. through Django's test client."""
    payload = event_payload(event)
    return payload, sign_payload(payload, secret, timestamp)


def post_event(
    url: str, event: Obj, secret: str, *, timestamp: int | None = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """POST `event` to a webhook URL, validly signed; returns (status, body), status 0 if unreachable."""
    payload, signature = signed_request(event, secret, timestamp)
    request = urllib.request.Request(  # noqa: S310 - tests post to local URLs they chose
        url,
        data=payload,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


# -- small helpers ------------------------------------------------------------------------------------
def _add_months(timestamp: int, months: int) -> int:
    """`timestamp` moved by calendar months, clamping the day as Stripe does (Jan 31 + 1 month = Feb 28)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def _period_end(start: int, recurring: Obj) -> int:
    """End of one billing period of a recurring price starting at `start`."""
    interval, count = recurring["interval"], int(recurring.get("interval_count") or 1)
    if interval in _SECONDS_PER:
        return start + _SECONDS_PER[interval] * count
    return _add_months(start, count * (12 if interval == "year" else 1))


def _as_int(value: Any, param: str) -> int:
    """A form value as an integer, or Stripe's 400."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise _invalid(f"Invalid integer: {value}", param)


def _as_bool(value: Any, param: str) -> bool:
    """A form value as a boolean, or Stripe's 400."""
    if value in ("true", "false"):
        return value == "true"
    raise _invalid(f"Invalid boolean: {value}", param)


def _as_dict(value: Any, param: str) -> Obj:
    """A form value that must be a hash."""
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"Invalid object: {param} must be a hash", param)
    return value


def _as_list(value: Any, param: str) -> list[Any]:
    """A form value that must be an array."""
    if value == "":
        return []
    if not isinstance(value, list):
        raise _invalid(f"Invalid array: {param} must be an array", param)
    return value


def _merge_metadata(current: Obj, update: Any) -> Obj:
    """Stripe metadata semantics: keys merge, an empty value unsets a key, an empty hash clears all."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in _as_dict(update, "metadata").items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def _changed(before: Obj, after: Obj) -> Obj:
    """`previous_attributes` for an update: the old values of the top-level keys that changed."""
    return {key: before.get(key) for key in after if before.get(key) != after.get(key)}


def _list_object(url: str, data: list[Obj], has_more: bool = False) -> Obj:
    """A Stripe list envelope."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


@dataclass
class _Route:
    """One API route: method, path pattern, handler, its params TypedDict and the resource it answers."""

    method: str
    pattern: re.Pattern[str]
    handler: Callable[[_Call], Obj]
    params: type
    resource: type | ListOf


@dataclass
class _Call:
    """One authenticated API call as a handler sees it."""

    params: Obj
    ids: dict[str, str]
    path: str
    livemode: bool


class FakeStripe(FakeServer):
    """Stripe's API for products, prices, customers, subscriptions, invoices, Checkout, portal and events."""

    def __init__(self, *, api_key: str | None = None, seed: int = 0, api_version: str = API_VERSION) -> None:
        super().__init__()
        self.api_key = api_key
        self.api_version = api_version
        self._random = random.Random(seed)
        self._state = threading.RLock()
        self._objects: dict[str, Obj] = {}
        self._private: dict[str, Obj] = {}
        self._event_queue: list[Obj] = []
        self._idempotent: dict[tuple[str, str], tuple[str, str, bytes, Reply]] = {}
        self._frozen_now: int | None = None
        self._request_context: Obj = {"id": None, "idempotency_key": None}
        self.account: Obj = self._new_account()
        self._api_routes: list[_Route] = []
        self._register_api()
        for method in ("GET", "POST", "DELETE"):
            self.route(method, "/v1/", self._serve_api)
        self.route("GET", "/c/pay/", self._checkout_page)
        self.route("POST", "/c/pay/", self._checkout_pay)
        self.route("GET", "/p/session/", self._portal_page)
        self.route("POST", "/p/session/", self._portal_cancel)

    # -- clock ---------------------------------------------------------------------------------------
    def now(self) -> int:
        """The fake's current Unix time (frozen if `freeze_time` was called)."""
        return self._frozen_now if self._frozen_now is not None else int(time.time())

    def freeze_time(self, timestamp: int) -> None:
        """Stop the clock at `timestamp` (objects' created/period fields follow it)."""
        self._frozen_now = timestamp

    def advance_time(self, seconds: int) -> None:
        """Move the (frozen) clock forward."""
        self._frozen_now = self.now() + seconds

    # -- public test helpers -------------------------------------------------------------------------
    def seed_product_with_price(
        self,
        name: str,
        unit_amount: int,
        currency: str = "eur",
        interval: str | None = "month",
        metadata: dict[str, str] | None = None,
        *,
        lookup_key: str | None = None,
        interval_count: int = 1,
    ) -> tuple[Obj, Obj]:
        """Create a product and its default price directly in the store (no events); amount in cents."""
        with self._state:
            product = self._new_product(name=name, metadata=dict(metadata or {}), livemode=False)
            recurring = None
            if interval is not None:
                recurring = {"interval": interval, "interval_count": interval_count}
            price = self._new_price(
                product_id=product["id"],
                currency=currency,
                unit_amount=unit_amount,
                recurring=recurring,
                metadata=dict(metadata or {}),
                lookup_key=lookup_key,
                livemode=False,
            )
            product["default_price"] = price["id"]
            return self._render(product), self._render(price)

    def complete_checkout(
        self, session_id: str, *, trial_days: int | None = None, email: str | None = None
    ) -> list[Obj]:
        """Finish a subscription-mode Checkout Session as a paying buyer would; returns the emitted events."""
        with self._state:
            session = self._get(session_id, "checkout.session", "checkout session")
            if session["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
            if session["mode"] != "subscription":
                raise ValueError("only subscription-mode sessions can be completed by the fake")
            extras = self._private[session_id]
            events: list[Obj] = []
            customer_id = session["customer"]
            buyer_email = email or session["customer_email"] or "buyer@example.com"
            if customer_id is None:
                customer = self._new_customer({"email": buyer_email}, livemode=session["livemode"], metadata={})
                customer_id = customer["id"]
                events.append(self._emit("customer.created", customer))
            else:
                buyer_email = self._objects[customer_id].get("email") or buyer_email
            payment_method = self._new_payment_method(customer_id, livemode=session["livemode"])
            subscription_data = extras["subscription_data"]
            if trial_days is None and subscription_data.get("trial_period_days") not in (None, ""):
                trial_days = _as_int(subscription_data["trial_period_days"], "trial_period_days")
            subscription, sub_events = self._start_subscription(
                customer_id=customer_id,
                items=[(line["price"]["id"], line["quantity"]) for line in extras["line_items"]],
                metadata=_merge_metadata({}, subscription_data.get("metadata", {})),
                trial_end=self.now() + trial_days * 86_400 if trial_days else None,
                default_payment_method=payment_method["id"],
                livemode=session["livemode"],
            )
            events.extend(sub_events)
            invoice = self._objects[subscription["latest_invoice"]]
            session.update(
                status="complete",
                payment_status="paid" if invoice["amount_paid"] else "no_payment_required",
                customer=customer_id,
                subscription=subscription["id"],
                invoice=invoice["id"],
                customer_details={
                    "address": None,
                    "email": buyer_email,
                    "name": None,
                    "phone": None,
                    "tax_exempt": "none",
                    "tax_ids": [],
                },
            )
            events.append(self._emit("checkout.session.completed", session))
            return events

    def set_subscription_status(self, sub_id: str, status: str) -> list[Obj]:
        """Force a subscription's status (as dunning or the dashboard would); returns the emitted events."""
        if status not in SUBSCRIPTION_STATUSES:
            raise ValueError(f"unknown subscription status {status!r}")
        with self._state:
            subscription = self._get(sub_id, "subscription", "subscription")
            before = copy.deepcopy(subscription)
            subscription["status"] = status
            if status == "canceled":
                subscription.update(canceled_at=self.now(), ended_at=self.now())
                subscription["cancellation_details"] = {
                    **before["cancellation_details"],
                    "reason": "payment_failed",
                }
                return [self._emit("customer.subscription.deleted", subscription)]
            return [self._emit("customer.subscription.updated", subscription, _changed(before, subscription))]

    def renew_subscription(self, sub_id: str, *, paid: bool = True) -> list[Obj]:
        """End the current period: renew (invoice paid, or failed → `past_due`) or end a cancel-at-period-end one."""
        with self._state:
            subscription = self._get(sub_id, "subscription", "subscription")
            if subscription["status"] == "canceled":
                raise ValueError(f"subscription {sub_id} is canceled")
            if subscription["cancel_at_period_end"]:
                subscription.update(status="canceled", ended_at=subscription["cancel_at"])
                return [self._emit("customer.subscription.deleted", subscription)]
            before = self._render(subscription)
            for item in self._items_of(sub_id):
                price = self._objects[item["price"]]
                start = item["current_period_end"]
                item.update(current_period_start=start, current_period_end=_period_end(start, price["recurring"]))
            invoice, events = self._invoice_subscription(subscription, "subscription_cycle", paid=paid, trialing=False)
            subscription["latest_invoice"] = invoice["id"]
            subscription["status"] = "active" if paid else "past_due"
            after = self._render(subscription)
            events.append(self._emit("customer.subscription.updated", subscription, _changed(before, after)))
            return events

    def make_event(
        self,
        type: str,
        data_object: Obj,
        previous_attributes: Obj | None = None,
        created: int | None = None,
    ) -> Obj:
        """Build, store and queue an Event around `data_object` (GET /v1/events/:id then finds it)."""
        with self._state:
            return self._store_event(type, copy.deepcopy(data_object), previous_attributes, created)

    def take_events(self) -> list[Obj]:
        """Events emitted (by API calls, helpers or `make_event`) since the last call, oldest first."""
        with self._state:
            events, self._event_queue = self._event_queue, []
            return events

    def get(self, object_id: str) -> Obj:
        """One stored object as the API would render it (raises KeyError if unknown)."""
        with self._state:
            return self._render(self._objects[object_id])

    def objects(self, object_type: str) -> list[Obj]:
        """All stored objects of a type (e.g. "customer", "checkout.session"), oldest first."""
        with self._state:
            return [self._render(obj) for obj in self._objects.values() if obj.get("object") == object_type]

    def add_webhook_endpoint(self, url: str, enabled_events: Iterable[str] = ("*",)) -> Obj:
        """Register a webhook endpoint (as the dashboard would); the returned dict includes its `secret`."""
        with self._state:
            return self._render(self._new_webhook_endpoint(url, list(enabled_events), {}, livemode=False))

    def deliver(self, events: Iterable[Obj]) -> list[tuple[str, str, int]]:
        """POST each event to every enabled endpoint subscribed to it; returns (event id, url, status)."""
        with self._state:
            endpoints = [dict(e) for e in self._objects.values() if e.get("object") == "webhook_endpoint"]
        results = []
        for event in events:
            for endpoint in endpoints:
                wanted = endpoint["enabled_events"]
                if endpoint["status"] == "enabled" and ("*" in wanted or event["type"] in wanted):
                    status, _ = post_event(endpoint["url"], event, endpoint["secret"])
                    results.append((event["id"], endpoint["url"], status))
        return results

    def inject_error(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int = 500,
        message: str = "An unknown error occurred",
        type_: str = "api_error",
        code: str | None = None,
        times: int = 1,
        should_retry: bool | None = False,
    ) -> None:
        """Fail the next `times` matching API requests with a Stripe error (`Stripe-Should-Retry: false`)."""
        error = StripeApiError(status, message, type_=type_, code=code)
        headers = {"Request-Id": "req_" + self._token(14)}
        if should_retry is not None:
            headers["Stripe-Should-Retry"] = str(should_retry).lower()
        self.inject_fault(method, path_prefix, times=times, reply=Reply(status, error.body(), headers))

    # -- HTTP plumbing -------------------------------------------------------------------------------
    def _serve_api(self, request: RecordedRequest) -> Reply:
        """Authenticate, route, apply idempotency and `expand`, and render the reply or Stripe's error."""
        request_id = "req_" + self._token(14)
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": request.headers.get("stripe-version") or self.api_version,
        }
        idempotency_key = request.headers.get("idempotency-key")
        try:
            api_key, livemode = self._authenticate(request)
            with self._state:
                cache_key = (api_key, idempotency_key or "")
                if request.method == "POST" and idempotency_key and cache_key in self._idempotent:
                    method, path, body, reply = self._idempotent[cache_key]
                    if (method, path, body) != (request.method, request.path, request.body):
                        raise StripeApiError(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they were"
                            f" first used with. Try using a key other than '{idempotency_key}' if you meant"
                            " to execute a different request.",
                            type_="idempotency_error",
                        )
                    return Reply(reply.status, reply.body, {**reply.headers, "Idempotent-Replayed": "true"})
                reply = self._call_route(request, livemode, request_id, idempotency_key, headers)
                if request.method == "POST" and idempotency_key:
                    headers["Idempotency-Key"] = idempotency_key
                    self._idempotent[cache_key] = (request.method, request.path, request.body, reply)
                return reply
        except StripeApiError as error:
            return Reply(error.status, error.body(), headers)

    def _call_route(
        self,
        request: RecordedRequest,
        livemode: bool,
        request_id: str,
        idem: str | None,
        headers: dict[str, str],
    ) -> Reply:
        """Find the route for the request and run its handler under the state lock."""
        params = request.form() if request.method == "POST" else request.query_form()
        expand = _as_list(params.pop("expand", []), "expand")
        for route in self._api_routes:
            match = route.pattern.fullmatch(request.path)
            if route.method != request.method or match is None:
                continue
            try:
                params_check(params, route.params)
                for path in expand:
                    expand_check(str(path), route.resource)
            except SchemaError as error:
                raise StripeApiError(400, error.message, code=error.code, param=error.param) from None
            self._request_context = {"id": request_id, "idempotency_key": idem}
            try:
                body = route.handler(_Call(params=params, ids=match.groupdict(), path=request.path, livemode=livemode))
            finally:
                self._request_context = {"id": None, "idempotency_key": None}
            for path in expand:
                self._expand(body, str(path).split("."))
            return Reply(200, body, headers)
        raise StripeApiError(
            404,
            f"Unrecognized request URL ({request.method}: {request.path}). Please see https://stripe.com/docs"
            " or we can help at https://support.stripe.com/.",
        )

    def _authenticate(self, request: RecordedRequest) -> tuple[str, bool]:
        """The secret key (Bearer or Basic) and whether it is a live key; raises Stripe's 401 otherwise."""
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif header.startswith("Basic "):
            try:
                key = b64decode(header[len("Basic ") :], validate=True).decode(errors="replace").partition(":")[0]
            except ValueError:
                key = ""
        else:
            raise StripeApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        valid_shape = re.fullmatch(r"(sk|rk)_(test|live)_[A-Za-z0-9]+", key) is not None
        if not valid_shape or (self.api_key is not None and key != self.api_key):
            raise StripeApiError(401, f"Invalid API Key provided: {key[:8]}{'*' * 12}{key[-4:]}")
        return key, "_live_" in key

    def _register_api(self) -> None:
        """The route table: method, path pattern, handler, and the stripe-python types that say what Stripe
        accepts there (the method's params TypedDict) and what it answers (the resource, for `expand`)."""
        one, many = r"(?P<id>[^/]+)", ListOf
        table: list[tuple[str, str, Callable[[_Call], Obj], type, type | ListOf]] = [
            ("GET", "/v1/account", lambda call: copy.deepcopy(self.account), P.AccountRetrieveCurrentParams, S.Account),
            # dj-stripe's model sync walks the platform's connected accounts (it has none).
            ("GET", "/v1/accounts", lambda call: self._list(call, []), P.AccountListParams, many(S.Account)),
            ("POST", "/v1/customers", self._customer_create, P.CustomerCreateParams, S.Customer),
            ("GET", "/v1/customers", self._customer_list, P.CustomerListParams, many(S.Customer)),
            ("GET", f"/v1/customers/{one}", self._customer_retrieve, P.CustomerRetrieveParams, S.Customer),
            ("POST", f"/v1/customers/{one}", self._customer_update, P.CustomerModifyParams, S.Customer),
            ("DELETE", f"/v1/customers/{one}", self._customer_delete, P.CustomerDeleteParams, S.Customer),
            ("GET", f"/v1/customers/{one}/sources", self._customer_sources, P.CustomerListSourcesParams, many(S.Card)),
            ("GET", f"/v1/customers/{one}/tax_ids", self._customer_sources, P.CustomerListTaxIdsParams, many(S.TaxId)),
            (
                "GET",
                f"/v1/customers/{one}/payment_methods",
                self._customer_payment_methods,
                P.CustomerListPaymentMethodsParams,
                many(S.PaymentMethod),
            ),
            ("POST", "/v1/products", self._product_create, P.ProductCreateParams, S.Product),
            ("GET", "/v1/products", self._product_list, P.ProductListParams, many(S.Product)),
            ("GET", f"/v1/products/{one}", self._product_retrieve, P.ProductRetrieveParams, S.Product),
            ("POST", f"/v1/products/{one}", self._product_update, P.ProductModifyParams, S.Product),
            ("DELETE", f"/v1/products/{one}", self._product_delete, P.ProductDeleteParams, S.Product),
            (
                "GET",
                f"/v1/products/{one}/features",
                self._product_features,
                P.ProductListFeaturesParams,
                many(S.ProductFeature),
            ),
            ("POST", "/v1/prices", self._price_create, P.PriceCreateParams, S.Price),
            ("GET", "/v1/prices", self._price_list, P.PriceListParams, many(S.Price)),
            ("GET", f"/v1/prices/{one}", self._price_retrieve, P.PriceRetrieveParams, S.Price),
            ("POST", f"/v1/prices/{one}", self._price_update, P.PriceModifyParams, S.Price),
            ("POST", "/v1/subscriptions", self._subscription_create, P.SubscriptionCreateParams, S.Subscription),
            ("GET", "/v1/subscriptions", self._subscription_list, P.SubscriptionListParams, many(S.Subscription)),
            (
                "GET",
                f"/v1/subscriptions/{one}",
                self._subscription_retrieve,
                P.SubscriptionRetrieveParams,
                S.Subscription,
            ),
            ("POST", f"/v1/subscriptions/{one}", self._subscription_update, P.SubscriptionModifyParams, S.Subscription),
            (
                "DELETE",
                f"/v1/subscriptions/{one}",
                self._subscription_cancel,
                P.SubscriptionCancelParams,
                S.Subscription,
            ),
            (
                "GET",
                "/v1/subscription_items",
                self._subscription_item_list,
                P.SubscriptionItemListParams,
                many(S.SubscriptionItem),
            ),
            (
                "GET",
                f"/v1/subscription_items/{one}",
                self._subscription_item_retrieve,
                P.SubscriptionItemRetrieveParams,
                S.SubscriptionItem,
            ),
            ("GET", "/v1/invoices", self._invoice_list, P.InvoiceListParams, many(S.Invoice)),
            ("GET", f"/v1/invoices/{one}", self._invoice_retrieve, P.InvoiceRetrieveParams, S.Invoice),
            (
                "GET",
                f"/v1/invoices/{one}/lines",
                self._invoice_lines,
                P.InvoiceListLinesParams,
                many(S.InvoiceLineItem),
            ),
            (
                "POST",
                "/v1/checkout/sessions",
                self._checkout_create,
                P.checkout.SessionCreateParams,
                S.checkout.Session,
            ),
            (
                "GET",
                "/v1/checkout/sessions",
                self._checkout_list,
                P.checkout.SessionListParams,
                many(S.checkout.Session),
            ),
            (
                "GET",
                f"/v1/checkout/sessions/{one}",
                self._checkout_retrieve,
                P.checkout.SessionRetrieveParams,
                S.checkout.Session,
            ),
            (
                "GET",
                f"/v1/checkout/sessions/{one}/line_items",
                self._checkout_line_items,
                P.checkout.SessionListLineItemsParams,
                many(S.LineItem),
            ),
            (
                "POST",
                f"/v1/checkout/sessions/{one}/expire",
                self._checkout_expire,
                P.checkout.SessionExpireParams,
                S.checkout.Session,
            ),
            (
                "POST",
                "/v1/billing_portal/sessions",
                self._portal_create,
                P.billing_portal.SessionCreateParams,
                S.billing_portal.Session,
            ),
            ("GET", "/v1/events", self._event_list, P.EventListParams, many(S.Event)),
            ("GET", f"/v1/events/{one}", self._event_retrieve, P.EventRetrieveParams, S.Event),
            ("GET", "/v1/payment_methods", self._payment_method_list, P.PaymentMethodListParams, many(S.PaymentMethod)),
            (
                "GET",
                f"/v1/payment_methods/{one}",
                self._payment_method_retrieve,
                P.PaymentMethodRetrieveParams,
                S.PaymentMethod,
            ),
            (
                "POST",
                "/v1/webhook_endpoints",
                self._webhook_endpoint_create,
                P.WebhookEndpointCreateParams,
                S.WebhookEndpoint,
            ),
            (
                "GET",
                "/v1/webhook_endpoints",
                self._webhook_endpoint_list,
                P.WebhookEndpointListParams,
                many(S.WebhookEndpoint),
            ),
            (
                "GET",
                f"/v1/webhook_endpoints/{one}",
                self._webhook_endpoint_retrieve,
                P.WebhookEndpointRetrieveParams,
                S.WebhookEndpoint,
            ),
            (
                "POST",
                f"/v1/webhook_endpoints/{one}",
                self._webhook_endpoint_update,
                P.WebhookEndpointModifyParams,
                S.WebhookEndpoint,
            ),
            (
                "DELETE",
                f"/v1/webhook_endpoints/{one}",
                self._webhook_endpoint_delete,
                P.WebhookEndpointDeleteParams,
                S.WebhookEndpoint,
            ),
        ]
        for method, pattern, handler, params, resource in table:
            self._api_routes.append(_Route(method, re.compile(pattern), handler, params, resource))

    # -- store plumbing ------------------------------------------------------------------------------
    def _token(self, length: int) -> str:
        """Random id characters (deterministic per seed)."""
        return "".join(self._random.choice(_ALPHABET) for _ in range(length))

    def _new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh id with Stripe's prefix for the object type."""
        return prefix + self._token(length)

    def _put(self, obj: Obj) -> Obj:
        """Store an object under its id and return it."""
        self._objects[obj["id"]] = obj
        return obj

    def _get(self, object_id: str, object_type: str, label: str, param: str = "id") -> Obj:
        """A stored (non-deleted) object of the given type, or Stripe's 404."""
        obj = self._objects.get(object_id)
        if obj is None or obj.get("object") != object_type or obj.get("deleted"):
            raise _missing(label, object_id, param)
        return obj

    def _of_type(self, object_type: str) -> list[Obj]:
        """Stored non-deleted objects of a type, newest first (Stripe's list order)."""
        found = [o for o in self._objects.values() if o.get("object") == object_type and not o.get("deleted")]
        return found[::-1]

    def _items_of(self, sub_id: str) -> list[Obj]:
        """A subscription's items, oldest first."""
        items = self._of_type("subscription_item")[::-1]
        return [item for item in items if item["subscription"] == sub_id]

    def _render(self, obj: Obj) -> Obj:
        """An API rendering of a stored object: a deep copy with nested objects filled in as Stripe does."""
        out = copy.deepcopy(obj)
        kind = obj.get("object")
        if kind == "subscription":
            items = [self._render(item) for item in self._items_of(obj["id"])]
            out["items"] = {
                **_list_object(f"/v1/subscription_items?subscription={obj['id']}", items),
                "total_count": len(items),
            }
        elif kind == "subscription_item":
            out["price"] = self._render(self._objects[obj["price"]])
        return out

    def _list(self, call: _Call, objects: list[Obj], url: str | None = None) -> Obj:
        """Paginate (limit, starting_after, ending_before) and filter by `created` like Stripe lists do."""
        params = call.params
        created = params.get("created")
        if isinstance(created, dict):
            bounds = {op: _as_int(v, f"created[{op}]") for op, v in created.items()}
            tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
            objects = [o for o in objects if all(tests[op](o["created"], v) for op, v in bounds.items())]
        elif created is not None:
            objects = [o for o in objects if o["created"] == _as_int(created, "created")]
        limit = _as_int(params.get("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise _invalid("This value must be between 1 and 100.", "limit")
        ids = [o["id"] for o in objects]
        if params.get("starting_after"):
            cursor = params["starting_after"]
            if cursor not in ids:
                raise _missing("object", cursor, "starting_after")
            start = ids.index(cursor) + 1
            page, has_more = objects[start : start + limit], len(objects) > start + limit
        elif params.get("ending_before"):
            cursor = params["ending_before"]
            if cursor not in ids:
                raise _missing("object", cursor, "ending_before")
            end = ids.index(cursor)
            page, has_more = objects[max(0, end - limit) : end], end - limit > 0
        else:
            page, has_more = objects[:limit], len(objects) > limit
        return _list_object(url or call.path, [self._render(o) for o in page], has_more)

    def _expand(self, obj: Any, parts: list[str]) -> None:
        """Apply one `expand[]` path in place: ids become objects, includable fields get filled in."""
        if not parts or not isinstance(obj, dict):
            return
        head, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and head == "data":
            for item in obj["data"]:
                self._expand(item, rest)
            return
        if head not in obj:
            include = self._includable(obj, head)
            if include is None:
                return
            obj[head] = include
        value = obj[head]
        if isinstance(value, str) and value in self._objects:
            value = obj[head] = self._render(self._objects[value])
        if isinstance(value, list):
            for index, element in enumerate(value):
                if isinstance(element, str) and element in self._objects:
                    value[index] = self._render(self._objects[element])
                self._expand(value[index], rest)
        else:
            self._expand(value, rest)

    def _includable(self, obj: Obj, field: str) -> Any:
        """Fields Stripe returns only when expanded (`customer.sources`, `checkout.session.line_items`)."""
        kind = obj.get("object")
        if kind == "customer" and field in ("sources", "tax_ids"):
            return _list_object(f"/v1/customers/{obj['id']}/{field}", [])
        if kind == "customer" and field == "subscriptions":
            subs = [self._render(s) for s in self._of_type("subscription") if s["customer"] == obj["id"]]
            return _list_object(f"/v1/customers/{obj['id']}/subscriptions", subs)
        if kind == "price" and field == "currency_options":
            return {
                obj["currency"]: {
                    "custom_unit_amount": None,
                    "tax_behavior": obj["tax_behavior"],
                    "unit_amount": obj["unit_amount"],
                    "unit_amount_decimal": obj["unit_amount_decimal"],
                }
            }
        if kind == "checkout.session" and field == "line_items":
            return _list_object(
                f"/v1/checkout/sessions/{obj['id']}/line_items",
                copy.deepcopy(self._private[obj["id"]]["line_items"]),
            )
        return None

    def _emit(self, event_type: str, obj: Obj, previous_attributes: Obj | None = None) -> Obj:
        """Record the Event Stripe would send for a change to `obj` (a snapshot of its current rendering)."""
        return self._store_event(event_type, self._render(obj), previous_attributes, None)

    def _store_event(self, event_type: str, data_object: Obj, previous: Obj | None, created: int | None) -> Obj:
        """Store and queue a full Event object."""
        data: Obj = {"object": data_object}
        if previous is not None:
            data["previous_attributes"] = previous
        endpoints = [
            e
            for e in self._of_type("webhook_endpoint")
            if e["status"] == "enabled" and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
        ]
        event = self._put(
            {
                "id": self._new_id("evt_"),
                "object": "event",
                "api_version": self.api_version,
                "created": self.now() if created is None else created,
                "data": data,
                "livemode": bool(data_object.get("livemode", False)),
                "pending_webhooks": len(endpoints),
                "request": dict(self._request_context),
                "type": event_type,
            }
        )
        self._event_queue.append(copy.deepcopy(event))
        return copy.deepcopy(event)

    # -- object builders -----------------------------------------------------------------------------
    def _new_account(self) -> Obj:
        """The platform account GET /v1/account answers (dj-stripe fetches it to own every object)."""
        return {
            "id": "acct_" + self._token(16),
            "object": "account",
            "business_profile": {"name": "Netia (fake Stripe)", "url": None, "support_email": None},
            "business_type": "company",
            "capabilities": {"card_payments": "active"},
            "charges_enabled": True,
            "controller": {"type": "account"},
            "country": "DE",
            "created": 1_700_000_000,
            "default_currency": "eur",
            "details_submitted": True,
            "email": "billing@netia.test",
            "metadata": {},
            "payouts_enabled": True,
            "settings": {
                "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
                "dashboard": {"display_name": "Netia", "timezone": "Etc/UTC"},
            },
            "type": "standard",
        }

    def _new_customer(self, params: Obj, *, livemode: bool, metadata: Obj) -> Obj:
        """Store a customer built from create parameters."""
        invoice_settings = _as_dict(params.get("invoice_settings", {}), "invoice_settings")
        return self._put(
            {
                "id": self._new_id("cus_", 14),
                "object": "customer",
                "address": params.get("address") or None,
                "balance": _as_int(params.get("balance", "0"), "balance"),
                "created": self.now(),
                "currency": None,
                "default_source": None,
                "delinquent": False,
                "description": params.get("description") or None,
                "discount": None,
                "email": params.get("email") or None,
                "invoice_prefix": params.get("invoice_prefix") or self._token(8).upper(),
                "invoice_settings": {
                    "custom_fields": None,
                    "default_payment_method": invoice_settings.get("default_payment_method") or None,
                    "footer": None,
                    "rendering_options": None,
                },
                "livemode": livemode,
                "metadata": metadata,
                "name": params.get("name") or None,
                "next_invoice_sequence": 1,
                "phone": params.get("phone") or None,
                "preferred_locales": _as_list(params.get("preferred_locales", []), "preferred_locales"),
                "shipping": None,
                "tax_exempt": params.get("tax_exempt") or "none",
                "test_clock": None,
            }
        )

    def _new_product(self, *, name: str, metadata: Obj, livemode: bool, params: Obj | None = None) -> Obj:
        """Store a product."""
        params = params or {}
        return self._put(
            {
                "id": params.get("id") or self._new_id("prod_", 14),
                "object": "product",
                "active": _as_bool(params["active"], "active") if "active" in params else True,
                "created": self.now(),
                "default_price": None,
                "description": params.get("description") or None,
                "images": _as_list(params.get("images", []), "images"),
                "livemode": livemode,
                "marketing_features": _as_list(params.get("marketing_features", []), "marketing_features"),
                "metadata": metadata,
                "name": name,
                "package_dimensions": None,
                "shippable": None,
                "statement_descriptor": params.get("statement_descriptor") or None,
                "tax_code": params.get("tax_code") or None,
                "type": "service",
                "unit_label": params.get("unit_label") or None,
                "updated": self.now(),
                "url": params.get("url") or None,
            }
        )

    def _new_price(
        self,
        *,
        product_id: str,
        currency: str,
        unit_amount: int,
        recurring: Obj | None,
        metadata: Obj,
        lookup_key: str | None,
        livemode: bool,
        nickname: str | None = None,
        tax_behavior: str = "unspecified",
    ) -> Obj:
        """Store a per-unit price; `recurring` is {"interval", "interval_count"} or None for one-time."""
        if recurring is not None:
            recurring = {
                "interval": recurring["interval"],
                "interval_count": int(recurring.get("interval_count") or 1),
                "meter": None,
                "trial_period_days": None,
                "usage_type": recurring.get("usage_type") or "licensed",
            }
        return self._put(
            {
                "id": self._new_id("price_"),
                "object": "price",
                "active": True,
                "billing_scheme": "per_unit",
                "created": self.now(),
                "currency": currency.lower(),
                "custom_unit_amount": None,
                "livemode": livemode,
                "lookup_key": lookup_key,
                "metadata": metadata,
                "nickname": nickname,
                "product": product_id,
                "recurring": recurring,
                "tax_behavior": tax_behavior,
                "tiers_mode": None,
                "transform_quantity": None,
                "type": "recurring" if recurring else "one_time",
                "unit_amount": unit_amount,
                "unit_amount_decimal": str(unit_amount),
            }
        )

    def _new_payment_method(self, customer_id: str, *, livemode: bool) -> Obj:
        """Store a Visa test card attached to the customer (what Checkout collects)."""
        return self._put(
            {
                "id": self._new_id("pm_"),
                "object": "payment_method",
                "allow_redisplay": "always",
                "billing_details": {"address": None, "email": None, "name": None, "phone": None},
                "card": {
                    "brand": "visa",
                    "country": "US",
                    "exp_month": 12,
                    "exp_year": datetime.fromtimestamp(self.now(), UTC).year + 3,
                    "funding": "credit",
                    "last4": "4242",
                },
                "created": self.now(),
                "customer": customer_id,
                "livemode": livemode,
                "metadata": {},
                "type": "card",
            }
        )

    def _new_webhook_endpoint(self, url: str, enabled: list[str], metadata: Obj, *, livemode: bool) -> Obj:
        """Store a webhook endpoint with a fresh signing secret."""
        return self._put(
            {
                "id": self._new_id("we_"),
                "object": "webhook_endpoint",
                "api_version": self.api_version,
                "application": None,
                "created": self.now(),
                "description": None,
                "enabled_events": enabled,
                "livemode": livemode,
                "metadata": metadata,
                "secret": "whsec_" + self._token(32),
                "status": "enabled",
                "url": url,
            }
        )

    def _start_subscription(
        self,
        *,
        customer_id: str,
        items: list[tuple[str, int]],
        metadata: Obj,
        trial_end: int | None,
        default_payment_method: str | None,
        livemode: bool,
        cancel_at_period_end: bool = False,
    ) -> tuple[Obj, list[Obj]]:
        """Create an active (or trialing) subscription with its first, paid invoice; returns it and events."""
        now = self.now()
        prices = [self._objects[price_id] for price_id, _ in items]
        sub_id = self._new_id("sub_")
        for price, (_, quantity) in zip(prices, items, strict=True):
            self._put(
                {
                    "id": self._new_id("si_", 14),
                    "object": "subscription_item",
                    "billing_thresholds": None,
                    "created": now,
                    "current_period_end": trial_end or _period_end(now, price["recurring"]),
                    "current_period_start": now,
                    "discounts": [],
                    "metadata": {},
                    "price": price["id"],
                    "quantity": quantity,
                    "subscription": sub_id,
                    "tax_rates": [],
                }
            )
        subscription = self._put(
            {
                "id": sub_id,
                "object": "subscription",
                "application": None,
                "application_fee_percent": None,
                "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
                "billing_cycle_anchor": trial_end or now,
                "billing_mode": {"flexible": None, "type": "classic"},
                "billing_thresholds": None,
                "cancel_at": None,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                "collection_method": "charge_automatically",
                "created": now,
                "currency": prices[0]["currency"],
                "customer": customer_id,
                "days_until_due": None,
                "default_payment_method": default_payment_method,
                "default_source": None,
                "default_tax_rates": [],
                "description": None,
                "discounts": [],
                "ended_at": None,
                "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
                "latest_invoice": None,
                "livemode": livemode,
                "metadata": metadata,
                "next_pending_invoice_item_invoice": None,
                "on_behalf_of": None,
                "pause_collection": None,
                "payment_settings": {
                    "payment_method_options": None,
                    "payment_method_types": None,
                    "save_default_payment_method": "off",
                },
                "pending_invoice_item_interval": None,
                "pending_setup_intent": None,
                "pending_update": None,
                "schedule": None,
                "start_date": now,
                "status": "trialing" if trial_end else "active",
                "test_clock": None,
                "transfer_data": None,
                "trial_end": trial_end,
                "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
                "trial_start": now if trial_end else None,
            }
        )
        if cancel_at_period_end:
            self._schedule_cancel(subscription)
        invoice, invoice_events = self._invoice_subscription(
            subscription, "subscription_create", paid=True, trialing=trial_end is not None
        )
        subscription["latest_invoice"] = invoice["id"]
        events = [self._emit("customer.subscription.created", subscription), *invoice_events]
        return subscription, events

    def _invoice_subscription(
        self, subscription: Obj, reason: str, *, paid: bool, trialing: bool
    ) -> tuple[Obj, list[Obj]]:
        """Invoice a subscription's current period (zero while trialing); returns the invoice and events."""
        now = self.now()
        customer = self._objects[subscription["customer"]]
        invoice_id = self._new_id("in_")
        lines = []
        for item in self._items_of(subscription["id"]):
            price = self._objects[item["price"]]
            product = self._objects[price["product"]]
            amount = 0 if trialing else price["unit_amount"] * item["quantity"]
            description = (
                f"Trial period for {product['name']}"
                if trialing
                else f"{item['quantity']} \u00d7 {product['name']} (at {price['unit_amount'] / 100:.2f}"
                f" {price['currency'].upper()} / {price['recurring']['interval']})"
            )
            lines.append(
                {
                    "id": self._new_id("il_"),
                    "object": "line_item",
                    "amount": amount,
                    "currency": price["currency"],
                    "description": description,
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": invoice_id,
                    "livemode": subscription["livemode"],
                    "metadata": {},
                    "parent": {
                        "invoice_item_details": None,
                        "subscription_item_details": {
                            "invoice_item": None,
                            "proration": False,
                            "proration_details": {"credited_items": None},
                            "subscription": subscription["id"],
                            "subscription_item": item["id"],
                        },
                        "type": "subscription_item_details",
                    },
                    "period": {"end": item["current_period_end"], "start": item["current_period_start"]},
                    "pretax_credit_amounts": [],
                    "pricing": {
                        "price_details": {"price": price["id"], "product": product["id"]},
                        "type": "price_details",
                        "unit_amount_decimal": price["unit_amount_decimal"],
                    },
                    "quantity": item["quantity"],
                    "taxes": [],
                }
            )
        total = sum(line["amount"] for line in lines)
        sequence = customer["next_invoice_sequence"]
        customer["next_invoice_sequence"] = sequence + 1
        invoice = self._put(
            {
                "id": invoice_id,
                "object": "invoice",
                "account_country": self.account["country"],
                "account_name": self.account["settings"]["dashboard"]["display_name"],
                "amount_due": total,
                "amount_overpaid": 0,
                "amount_paid": 0,
                "amount_remaining": total,
                "amount_shipping": 0,
                "attempt_count": 0,
                "attempted": False,
                "auto_advance": True,
                "automatic_tax": {
                    "disabled_reason": None,
                    "enabled": False,
                    "liability": None,
                    "status": None,
                },
                "billing_reason": reason,
                "collection_method": "charge_automatically",
                "created": now,
                "currency": subscription["currency"],
                "customer": customer["id"],
                "customer_email": customer["email"],
                "customer_name": customer["name"],
                "default_payment_method": None,
                "default_source": None,
                "default_tax_rates": [],
                "description": None,
                "discounts": [],
                "due_date": None,
                "effective_at": None,
                "ending_balance": None,
                "hosted_invoice_url": None,
                "invoice_pdf": None,
                "issuer": {"type": "self"},
                "last_finalization_error": None,
                "lines": _list_object(f"/v1/invoices/{invoice_id}/lines", lines),
                "livemode": subscription["livemode"],
                "metadata": {},
                "next_payment_attempt": None,
                "number": None,
                "parent": {
                    "quote_details": None,
                    "subscription_details": {
                        "metadata": dict(subscription["metadata"]),
                        "subscription": subscription["id"],
                    },
                    "type": "subscription_details",
                },
                "period_end": now,
                "period_start": now,
                "starting_balance": 0,
                "status": "draft",
                "status_transitions": {
                    "finalized_at": None,
                    "marked_uncollectible_at": None,
                    "paid_at": None,
                    "voided_at": None,
                },
                "subtotal": total,
                "subtotal_excluding_tax": total,
                "total": total,
                "total_discount_amounts": [],
                "total_excluding_tax": total,
                "total_taxes": [],
                "webhooks_delivered_at": None,
            }
        )
        events = [self._emit("invoice.created", invoice)]
        invoice.update(
            status="open",
            number=f"{customer['invoice_prefix']}-{sequence:04d}",
            effective_at=now,
            ending_balance=0,
            hosted_invoice_url=f"https://invoice.stripe.com/i/fake/{invoice_id}",
            invoice_pdf=f"https://pay.stripe.com/invoice/fake/{invoice_id}/pdf",
        )
        invoice["status_transitions"]["finalized_at"] = now
        events.append(self._emit("invoice.finalized", invoice))
        invoice.update(attempt_count=1, attempted=True)
        if paid:
            invoice.update(status="paid", amount_paid=total, amount_remaining=0)
            invoice["status_transitions"]["paid_at"] = now
            events.append(self._emit("invoice.paid", invoice))
            events.append(self._emit("invoice.payment_succeeded", invoice))
        else:
            invoice["next_payment_attempt"] = now + 3 * 86_400
            events.append(self._emit("invoice.payment_failed", invoice))
        return invoice, events

    def _schedule_cancel(self, subscription: Obj) -> None:
        """Mark a subscription to cancel at the end of its current period, as Stripe records it."""
        items = self._items_of(subscription["id"])
        subscription.update(
            cancel_at_period_end=True,
            cancel_at=max(item["current_period_end"] for item in items),
            canceled_at=self.now(),
        )
        subscription["cancellation_details"] = {
            **subscription["cancellation_details"],
            "reason": "cancellation_requested",
        }

    # -- customers -----------------------------------------------------------------------------------
    def _customer_create(self, call: _Call) -> Obj:
        """POST /v1/customers."""
        metadata = _merge_metadata({}, call.params.get("metadata", {}))
        customer = self._new_customer(call.params, livemode=call.livemode, metadata=metadata)
        self._emit("customer.created", customer)
        return self._render(customer)

    def _customer_list(self, call: _Call) -> Obj:
        """GET /v1/customers (filter: email)."""
        customers = self._of_type("customer")
        if "email" in call.params:
            customers = [c for c in customers if c["email"] == call.params["email"]]
        return self._list(call, customers)

    def _customer_retrieve(self, call: _Call) -> Obj:
        """GET /v1/customers/:id (a deleted customer answers its `deleted: true` stub, as Stripe does)."""
        customer = self._objects.get(call.ids["id"])
        if customer is None or customer.get("object") != "customer":
            raise _missing("customer", call.ids["id"])
        return self._render(customer)

    def _customer_update(self, call: _Call) -> Obj:
        """POST /v1/customers/:id."""
        customer = self._get(call.ids["id"], "customer", "customer")
        before = copy.deepcopy(customer)
        params = call.params
        for field in ("email", "name", "description", "phone", "tax_exempt"):
            if field in params:
                customer[field] = params[field] or None
        if "metadata" in params:
            customer["metadata"] = _merge_metadata(customer["metadata"], params["metadata"])
        if "address" in params:
            customer["address"] = params["address"] or None
        if "preferred_locales" in params:
            customer["preferred_locales"] = _as_list(params["preferred_locales"], "preferred_locales")
        if "invoice_settings" in params:
            settings = _as_dict(params["invoice_settings"], "invoice_settings")
            if settings.get("default_payment_method"):
                self._get(
                    settings["default_payment_method"],
                    "payment_method",
                    "PaymentMethod",
                    "invoice_settings[default_payment_method]",
                )
            customer["invoice_settings"] = {
                **customer["invoice_settings"],
                **{k: v or None for k, v in settings.items()},
            }
        previous = _changed(before, customer)
        if previous:
            self._emit("customer.updated", customer, previous)
        return self._render(customer)

    def _customer_delete(self, call: _Call) -> Obj:
        """DELETE /v1/customers/:id: cancels its subscriptions, leaves a `deleted` stub."""
        customer = self._get(call.ids["id"], "customer", "customer")
        for subscription in self._of_type("subscription"):
            if subscription["customer"] == customer["id"] and subscription["status"] != "canceled":
                subscription.update(status="canceled", canceled_at=self.now(), ended_at=self.now())
                self._emit("customer.subscription.deleted", subscription)
        self._emit("customer.deleted", customer)
        stub = {"id": customer["id"], "object": "customer", "deleted": True}
        self._objects[customer["id"]] = stub
        return dict(stub)

    def _customer_sources(self, call: _Call) -> Obj:
        """GET /v1/customers/:id/sources and /tax_ids: always empty (Netia uses Checkout)."""
        self._get(call.ids["id"], "customer", "customer")
        return self._list(call, [])

    def _customer_payment_methods(self, call: _Call) -> Obj:
        """GET /v1/customers/:id/payment_methods."""
        self._get(call.ids["id"], "customer", "customer")
        methods = [m for m in self._of_type("payment_method") if m["customer"] == call.ids["id"]]
        if "type" in call.params:
            methods = [m for m in methods if m["type"] == call.params["type"]]
        return self._list(call, methods)

    # -- products and prices -------------------------------------------------------------------------
    def _product_create(self, call: _Call) -> Obj:
        """POST /v1/products (with optional `default_price_data`)."""
        params = call.params
        if not params.get("name"):
            raise _required("name")
        if params.get("id") and params["id"] in self._objects:
            raise _invalid("Product already exists.", "id", code="resource_already_exists")
        product = self._new_product(
            name=params["name"],
            metadata=_merge_metadata({}, params.get("metadata", {})),
            livemode=call.livemode,
            params=params,
        )
        self._emit("product.created", product)
        if "default_price_data" in params:
            data = _as_dict(params["default_price_data"], "default_price_data")
            price = self._price_from_params(data, product["id"], call.livemode, "default_price_data")
            product["default_price"] = price["id"]
        return self._render(product)

    def _product_list(self, call: _Call) -> Obj:
        """GET /v1/products (filters: active, ids)."""
        products = self._of_type("product")
        if "active" in call.params:
            active = _as_bool(call.params["active"], "active")
            products = [p for p in products if p["active"] == active]
        if "ids" in call.params:
            wanted = set(_as_list(call.params["ids"], "ids"))
            products = [p for p in products if p["id"] in wanted]
        return self._list(call, products)

    def _product_retrieve(self, call: _Call) -> Obj:
        """GET /v1/products/:id."""
        return self._render(self._get(call.ids["id"], "product", "product"))

    def _product_update(self, call: _Call) -> Obj:
        """POST /v1/products/:id."""
        product = self._get(call.ids["id"], "product", "product")
        before = copy.deepcopy(product)
        params = call.params
        if "default_price" in params:
            price = self._get(params["default_price"], "price", "price", "default_price")
            if price["product"] != product["id"]:
                raise _invalid("The default price must belong to this product.", "default_price")
            product["default_price"] = price["id"]
        if "active" in params:
            product["active"] = _as_bool(params["active"], "active")
        if "name" in params:
            if not params["name"]:
                raise _invalid("You passed an empty string for 'name'.", "name", "parameter_invalid_empty")
            product["name"] = params["name"]
        for field in ("description", "statement_descriptor", "tax_code", "unit_label", "url"):
            if field in params:
                product[field] = params[field] or None
        for field in ("images", "marketing_features"):
            if field in params:
                product[field] = _as_list(params[field], field)
        if "metadata" in params:
            product["metadata"] = _merge_metadata(product["metadata"], params["metadata"])
        previous = _changed(before, product)
        if previous:
            product["updated"] = self.now()
            self._emit("product.updated", product, previous)
        return self._render(product)

    def _product_delete(self, call: _Call) -> Obj:
        """DELETE /v1/products/:id (refused while it has prices, as Stripe does)."""
        product = self._get(call.ids["id"], "product", "product")
        if any(p["product"] == product["id"] for p in self._of_type("price")):
            raise _invalid("This product cannot be deleted because it has one or more user-created prices.")
        del self._objects[product["id"]]
        self._emit("product.deleted", product)
        return {"id": product["id"], "object": "product", "deleted": True}

    def _product_features(self, call: _Call) -> Obj:
        """GET /v1/products/:id/features (dj-stripe lists them after saving any Product): empty."""
        self._get(call.ids["id"], "product", "product")
        return self._list(call, [])

    def _price_from_params(self, params: Obj, product_id: str | None, livemode: bool, prefix: str = "") -> Obj:
        """Validate price parameters, store the price and emit `price.created`."""

        def name(field: str) -> str:
            return f"{prefix}[{field}]" if prefix else field

        if not params.get("currency"):
            raise _required(name("currency"))
        if params.get("billing_scheme", "per_unit") != "per_unit" or "tiers" in params:
            raise _invalid("The fake supports per_unit prices only.", name("billing_scheme"))
        if "unit_amount" in params:
            unit_amount = _as_int(params["unit_amount"], name("unit_amount"))
        elif "unit_amount_decimal" in params:
            unit_amount = int(float(params["unit_amount_decimal"]))
        else:
            raise _required(name("unit_amount"))
        if unit_amount < 0:
            raise _invalid("This value must be greater than or equal to 0.", name("unit_amount"))
        recurring = None
        if params.get("recurring"):
            recurring = _as_dict(params["recurring"], name("recurring"))
            if recurring.get("interval") not in ("day", "week", "month", "year"):
                raise _invalid(
                    "Invalid recurring[interval]: must be one of day, week, month, or year",
                    name("recurring[interval]"),
                )
        lookup_key = params.get("lookup_key") or None
        if lookup_key is not None:
            holders = [p for p in self._of_type("price") if p["lookup_key"] == lookup_key]
            transfer = params.get("transfer_lookup_key") == "true"
            if holders and not transfer:
                raise _invalid(f"A price (`{holders[0]['id']}`) already uses that lookup key.", "lookup_key")
            for holder in holders:
                holder["lookup_key"] = None
        price = self._new_price(
            product_id=product_id or "",
            currency=params["currency"],
            unit_amount=unit_amount,
            recurring=recurring,
            metadata=_merge_metadata({}, params.get("metadata", {})),
            lookup_key=lookup_key,
            livemode=livemode,
            nickname=params.get("nickname") or None,
            tax_behavior=params.get("tax_behavior") or "unspecified",
        )
        if "active" in params:
            price["active"] = _as_bool(params["active"], "active")
        self._emit("price.created", price)
        return price

    def _price_create(self, call: _Call) -> Obj:
        """POST /v1/prices (`product` or `product_data[name]`)."""
        params = call.params
        if params.get("product"):
            product_id = self._get(params["product"], "product", "product", "product")["id"]
        elif params.get("product_data"):
            data = _as_dict(params["product_data"], "product_data")
            if not data.get("name"):
                raise _required("product_data[name]")
            product = self._new_product(
                name=data["name"],
                metadata=_merge_metadata({}, data.get("metadata", {})),
                livemode=call.livemode,
            )
            self._emit("product.created", product)
            product_id = product["id"]
        else:
            raise _required("product")
        return self._render(self._price_from_params(params, product_id, call.livemode))

    def _price_list(self, call: _Call) -> Obj:
        """GET /v1/prices (filters: active, currency, product, type, lookup_keys, recurring)."""
        prices = self._of_type("price")
        params = call.params
        if "active" in params:
            active = _as_bool(params["active"], "active")
            prices = [p for p in prices if p["active"] == active]
        for field in ("currency", "product", "type"):
            if field in params:
                prices = [p for p in prices if p[field] == params[field]]
        if "lookup_keys" in params:
            keys = set(_as_list(params["lookup_keys"], "lookup_keys"))
            prices = [p for p in prices if p["lookup_key"] in keys]
        if "recurring" in params:
            wanted = _as_dict(params["recurring"], "recurring")
            prices = [
                p for p in prices if p["recurring"] and all(str(p["recurring"].get(k)) == v for k, v in wanted.items())
            ]
        return self._list(call, prices)

    def _price_retrieve(self, call: _Call) -> Obj:
        """GET /v1/prices/:id."""
        return self._render(self._get(call.ids["id"], "price", "price"))

    def _price_update(self, call: _Call) -> Obj:
        """POST /v1/prices/:id (active, metadata, nickname, lookup_key, tax_behavior)."""
        price = self._get(call.ids["id"], "price", "price")
        before = copy.deepcopy(price)
        params = call.params
        if "active" in params:
            price["active"] = _as_bool(params["active"], "active")
        if "nickname" in params:
            price["nickname"] = params["nickname"] or None
        if "tax_behavior" in params:
            price["tax_behavior"] = params["tax_behavior"]
        if "metadata" in params:
            price["metadata"] = _merge_metadata(price["metadata"], params["metadata"])
        if "lookup_key" in params:
            key = params["lookup_key"] or None
            holders = [p for p in self._of_type("price") if key and p["lookup_key"] == key and p is not price]
            if holders and params.get("transfer_lookup_key") != "true":
                raise _invalid(f"A price (`{holders[0]['id']}`) already uses that lookup key.", "lookup_key")
            for holder in holders:
                holder["lookup_key"] = None
            price["lookup_key"] = key
        previous = _changed(before, price)
        if previous:
            self._emit("price.updated", price, previous)
        return self._render(price)

    # -- subscriptions -------------------------------------------------------------------------------
    def _parse_items(self, raw: Any, param: str) -> list[tuple[str, int]]:
        """`items[n][price]` / `line_items[n][price]` + quantity, each price checked to be recurring."""
        items = []
        for index, item in enumerate(_as_list(raw, param)):
            item = _as_dict(item, f"{param}[{index}]")
            if not item.get("price"):
                raise _required(f"{param}[{index}][price]")
            price = self._get(item["price"], "price", "price", f"{param}[{index}][price]")
            if price["type"] != "recurring":
                raise _invalid(
                    "The price specified is set to `type=one_time` but this field only accepts prices with"
                    " `type=recurring`.",
                    f"{param}[{index}][price]",
                )
            if not price["active"]:
                raise _invalid(
                    "The price specified is inactive. This field only accepts active prices.",
                    f"{param}[{index}][price]",
                )
            items.append((price["id"], _as_int(item.get("quantity", "1"), f"{param}[{index}][quantity]")))
        return items

    def _subscription_create(self, call: _Call) -> Obj:
        """POST /v1/subscriptions: active at once (the fake's customers always pay), or trialing."""
        params = call.params
        if not params.get("customer"):
            raise _required("customer")
        customer = self._get(params["customer"], "customer", "customer", "customer")
        if not params.get("items"):
            raise _required("items")
        items = self._parse_items(params["items"], "items")
        trial_end = None
        if params.get("trial_period_days"):
            trial_end = self.now() + _as_int(params["trial_period_days"], "trial_period_days") * 86_400
        elif params.get("trial_end") and params["trial_end"] != "now":
            trial_end = _as_int(params["trial_end"], "trial_end")
        subscription, _ = self._start_subscription(
            customer_id=customer["id"],
            items=items,
            metadata=_merge_metadata({}, params.get("metadata", {})),
            trial_end=trial_end,
            default_payment_method=params.get("default_payment_method") or None,
            livemode=call.livemode,
            cancel_at_period_end=_as_bool(params.get("cancel_at_period_end", "false"), "cancel_at_period_end"),
        )
        return self._render(subscription)

    def _subscription_list(self, call: _Call) -> Obj:
        """GET /v1/subscriptions (default: not canceled; `status=all` for every one)."""
        subscriptions = self._of_type("subscription")
        status = call.params.get("status")
        if status is None:
            subscriptions = [s for s in subscriptions if s["status"] not in ("canceled", "incomplete_expired")]
        elif status != "all":
            if status not in (*SUBSCRIPTION_STATUSES, "ended"):
                raise _invalid(f"Invalid status: must be one of {', '.join(SUBSCRIPTION_STATUSES)}", "status")
            ended = ("canceled", "incomplete_expired")
            subscriptions = [
                s for s in subscriptions if s["status"] == status or (status == "ended" and s["status"] in ended)
            ]
        if "customer" in call.params:
            subscriptions = [s for s in subscriptions if s["customer"] == call.params["customer"]]
        if "price" in call.params:
            subscriptions = [
                s for s in subscriptions if any(i["price"] == call.params["price"] for i in self._items_of(s["id"]))
            ]
        return self._list(call, subscriptions)

    def _subscription_retrieve(self, call: _Call) -> Obj:
        """GET /v1/subscriptions/:id (canceled ones stay retrievable)."""
        return self._render(self._get(call.ids["id"], "subscription", "subscription"))

    def _subscription_update(self, call: _Call) -> Obj:
        """POST /v1/subscriptions/:id: plan/quantity change, cancel_at_period_end, metadata, trial_end=now."""
        subscription = self._get(call.ids["id"], "subscription", "subscription")
        params = call.params
        if subscription["status"] == "canceled" and set(params) - {"metadata", "cancellation_details"}:
            raise _invalid("A canceled subscription can only update its cancellation_details and metadata.")
        before = self._render(subscription)
        if "items" in params:
            self._update_items(subscription, params["items"])
        if "cancel_at_period_end" in params:
            if _as_bool(params["cancel_at_period_end"], "cancel_at_period_end"):
                self._schedule_cancel(subscription)
            else:
                subscription.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
                subscription["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}
        if "cancellation_details" in params:
            details = _as_dict(params["cancellation_details"], "cancellation_details")
            subscription["cancellation_details"] = {
                **subscription["cancellation_details"],
                **{k: v or None for k, v in details.items()},
            }
        if "metadata" in params:
            subscription["metadata"] = _merge_metadata(subscription["metadata"], params["metadata"])
        for field in ("default_payment_method", "description"):
            if field in params:
                subscription[field] = params[field] or None
        if params.get("pause_collection") is not None:
            pause = params["pause_collection"]
            subscription["pause_collection"] = _as_dict(pause, "pause_collection") or None
        if params.get("trial_end") == "now" and subscription["status"] == "trialing":
            subscription.update(trial_end=self.now(), status="active")
            for item in self._items_of(subscription["id"]):
                price = self._objects[item["price"]]
                item.update(
                    current_period_start=self.now(),
                    current_period_end=_period_end(self.now(), price["recurring"]),
                )
        after = self._render(subscription)
        previous = _changed(before, after)
        if previous:
            self._emit("customer.subscription.updated", subscription, previous)
        return after

    def _update_items(self, subscription: Obj, raw: Any) -> None:
        """Apply `items[n][id|price|quantity|deleted]` to a subscription's items."""
        for index, change in enumerate(_as_list(raw, "items")):
            change = _as_dict(change, f"items[{index}]")
            param = f"items[{index}]"
            if change.get("id"):
                item = self._get(change["id"], "subscription_item", "subscription item", f"{param}[id]")
                if item["subscription"] != subscription["id"]:
                    raise _invalid(
                        f"Subscription item {item['id']} does not belong to this subscription.",
                        f"{param}[id]",
                    )
                if change.get("deleted") == "true":
                    del self._objects[item["id"]]
                    continue
            else:
                if not change.get("price"):
                    raise _required(f"{param}[price]")
                first = self._items_of(subscription["id"])[0]
                item = self._put(
                    {
                        **copy.deepcopy(first),
                        "id": self._new_id("si_", 14),
                        "created": self.now(),
                        "quantity": 1,
                        "metadata": {},
                    }
                )
            if change.get("price"):
                price_id, _ = self._parse_items([{"price": change["price"]}], "items")[0]
                item["price"] = price_id
            if "quantity" in change:
                item["quantity"] = _as_int(change["quantity"], f"{param}[quantity]")
            if "metadata" in change:
                item["metadata"] = _merge_metadata(item["metadata"], change["metadata"])

    def _subscription_cancel(self, call: _Call) -> Obj:
        """DELETE /v1/subscriptions/:id: cancel now; an already canceled one is 'No such subscription'."""
        subscription = self._get(call.ids["id"], "subscription", "subscription")
        if subscription["status"] == "canceled":
            raise _missing("subscription", subscription["id"])
        details = _as_dict(call.params.get("cancellation_details", {}), "cancellation_details")
        subscription.update(status="canceled", canceled_at=self.now(), ended_at=self.now())
        subscription["cancellation_details"] = {
            "comment": details.get("comment") or None,
            "feedback": details.get("feedback") or None,
            "reason": "cancellation_requested",
        }
        self._emit("customer.subscription.deleted", subscription)
        return self._render(subscription)

    def _subscription_item_list(self, call: _Call) -> Obj:
        """GET /v1/subscription_items?subscription=..."""
        if not call.params.get("subscription"):
            raise _required("subscription")
        self._get(call.params["subscription"], "subscription", "subscription", "subscription")
        return self._list(call, self._items_of(call.params["subscription"])[::-1])

    def _subscription_item_retrieve(self, call: _Call) -> Obj:
        """GET /v1/subscription_items/:id."""
        return self._render(self._get(call.ids["id"], "subscription_item", "subscription item"))

    # -- invoices ------------------------------------------------------------------------------------
    def _invoice_list(self, call: _Call) -> Obj:
        """GET /v1/invoices (filters: customer, subscription, status)."""
        invoices = self._of_type("invoice")
        for field in ("customer", "status", "collection_method"):
            if field in call.params:
                invoices = [i for i in invoices if i[field] == call.params[field]]
        if "subscription" in call.params:
            invoices = [
                i
                for i in invoices
                if (i["parent"] or {}).get("subscription_details", {}).get("subscription")
                == call.params["subscription"]
            ]
        return self._list(call, invoices)

    def _invoice_retrieve(self, call: _Call) -> Obj:
        """GET /v1/invoices/:id."""
        return self._render(self._get(call.ids["id"], "invoice", "invoice"))

    def _invoice_lines(self, call: _Call) -> Obj:
        """GET /v1/invoices/:id/lines."""
        invoice = self._get(call.ids["id"], "invoice", "invoice")
        return self._list(call, invoice["lines"]["data"])

    # -- Checkout and the customer portal ------------------------------------------------------------
    def _checkout_create(self, call: _Call) -> Obj:
        """POST /v1/checkout/sessions (subscription, payment or setup mode; only subscription completes)."""
        params = call.params
        mode = params.get("mode")
        if not mode:
            raise _required("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise _invalid("Invalid mode: must be one of payment, setup, or subscription", "mode")
        if params.get("customer") and params.get("customer_email"):
            raise _invalid("You may only specify one of these parameters: customer, customer_email.", "customer")
        customer = None
        if params.get("customer"):
            customer = self._get(params["customer"], "customer", "customer", "customer")
        ui_mode = params.get("ui_mode") or "hosted"
        if ui_mode == "hosted" and params.get("return_url"):
            raise _invalid("You may not specify `return_url` when `ui_mode` is `hosted`.", "return_url")
        line_items = []
        raw_items = _as_list(params.get("line_items", []), "line_items")
        if mode != "setup" and not raw_items:
            raise _required("line_items")
        for index, raw in enumerate(raw_items):
            raw = _as_dict(raw, f"line_items[{index}]")
            if "quantity" not in raw:
                raise _invalid(
                    f"Quantity is required. Add `quantity` to `line_items[{index}]`",
                    f"line_items[{index}][quantity]",
                    "parameter_missing",
                )
            if mode == "subscription":
                price_id, quantity = self._parse_items([raw], "line_items")[0]
            else:
                price_id = self._get(raw.get("price", ""), "price", "price", f"line_items[{index}][price]")["id"]
                quantity = _as_int(raw["quantity"], f"line_items[{index}][quantity]")
            price = self._objects[price_id]
            amount = price["unit_amount"] * quantity
            line_items.append(
                {
                    "id": self._new_id("li_"),
                    "object": "item",
                    "adjustable_quantity": None,
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": price["currency"],
                    "description": self._objects[price["product"]]["name"],
                    "discounts": [],
                    "metadata": {},
                    "price": self._render(price),
                    "quantity": quantity,
                    "taxes": [],
                }
            )
        subscription_data = _as_dict(params.get("subscription_data", {}), "subscription_data")
        if subscription_data and mode != "subscription":
            raise _invalid("You can only specify `subscription_data` in `subscription` mode.", "subscription_data")
        trial = subscription_data.get("trial_period_days") not in (None, "")
        total = 0 if trial else sum(line["amount_total"] for line in line_items)
        session_id = "cs_" + ("live_" if call.livemode else "test_") + self._token(58)
        expires_at = _as_int(params["expires_at"], "expires_at") if "expires_at" in params else self.now() + 86_400
        session = self._put(
            {
                "id": session_id,
                "object": "checkout.session",
                "allow_promotion_codes": _as_bool(params["allow_promotion_codes"], "allow_promotion_codes")
                if "allow_promotion_codes" in params
                else None,
                "amount_subtotal": total if line_items else None,
                "amount_total": total if line_items else None,
                "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
                "billing_address_collection": params.get("billing_address_collection") or None,
                "cancel_url": params.get("cancel_url") or None,
                "client_reference_id": params.get("client_reference_id") or None,
                "created": self.now(),
                "currency": line_items[0]["currency"] if line_items else None,
                "customer": customer["id"] if customer else None,
                "customer_creation": None if customer else params.get("customer_creation") or "always",
                "customer_details": {
                    "email": customer["email"],
                    "address": None,
                    "name": None,
                    "phone": None,
                    "tax_exempt": "none",
                    "tax_ids": None,
                }
                if customer
                else None,
                "customer_email": params.get("customer_email") or None,
                "expires_at": expires_at,
                "invoice": None,
                "livemode": call.livemode,
                "locale": params.get("locale") or None,
                "metadata": _merge_metadata({}, params.get("metadata", {})),
                "mode": mode,
                "payment_intent": None,
                "payment_method_collection": params.get("payment_method_collection") or "always",
                "payment_method_types": _as_list(params.get("payment_method_types", ["card"]), "payment_method_types"),
                "payment_status": "unpaid",
                "setup_intent": None,
                "status": "open",
                "submit_type": None,
                "subscription": None,
                "success_url": params.get("success_url") or None,
                "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
                "ui_mode": ui_mode,
                "url": f"{self.url}/c/pay/{session_id}" if ui_mode == "hosted" else None,
            }
        )
        self._private[session_id] = {"line_items": line_items, "subscription_data": subscription_data}
        return self._render(session)

    def _checkout_list(self, call: _Call) -> Obj:
        """GET /v1/checkout/sessions (filters: customer, subscription, status)."""
        sessions = self._of_type("checkout.session")
        for field in ("customer", "subscription", "status", "payment_intent"):
            if field in call.params:
                sessions = [s for s in sessions if s[field] == call.params[field]]
        return self._list(call, sessions)

    def _checkout_retrieve(self, call: _Call) -> Obj:
        """GET /v1/checkout/sessions/:id."""
        return self._render(self._get(call.ids["id"], "checkout.session", "checkout.session"))

    def _checkout_line_items(self, call: _Call) -> Obj:
        """GET /v1/checkout/sessions/:id/line_items."""
        session = self._get(call.ids["id"], "checkout.session", "checkout.session")
        return self._list(call, self._private[session["id"]]["line_items"][::-1])

    def _checkout_expire(self, call: _Call) -> Obj:
        """POST /v1/checkout/sessions/:id/expire."""
        session = self._get(call.ids["id"], "checkout.session", "checkout.session")
        if session["status"] != "open":
            raise _invalid(
                f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout'
                f' Session has a status of "{session["status"]}".'
            )
        session.update(status="expired", url=None)
        self._emit("checkout.session.expired", session)
        return self._render(session)

    def _portal_create(self, call: _Call) -> Obj:
        """POST /v1/billing_portal/sessions."""
        params = call.params
        if not params.get("customer"):
            raise _required("customer")
        customer = self._get(params["customer"], "customer", "customer", "customer")
        flow = None
        if params.get("flow_data"):
            flow = _as_dict(params["flow_data"], "flow_data")
            if flow.get("type") not in (
                "payment_method_update",
                "subscription_cancel",
                "subscription_update",
                "subscription_update_confirm",
            ):
                raise _invalid("Invalid flow_data[type]", "flow_data[type]")
            if flow["type"].startswith("subscription_"):
                key = flow["type"]
                sub_id = _as_dict(flow.get(key, {}), f"flow_data[{key}]").get("subscription", "")
                subscription = self._get(sub_id, "subscription", "subscription", f"flow_data[{key}][subscription]")
                if subscription["customer"] != customer["id"]:
                    raise _invalid(
                        "The subscription does not belong to this customer.",
                        f"flow_data[{key}][subscription]",
                    )
        session_id = self._new_id("bps_")
        session = self._put(
            {
                "id": session_id,
                "object": "billing_portal.session",
                "configuration": params.get("configuration") or "bpc_" + "0" * 24,
                "created": self.now(),
                "customer": customer["id"],
                "flow": flow,
                "livemode": call.livemode,
                "locale": params.get("locale") or None,
                "on_behalf_of": params.get("on_behalf_of") or None,
                "return_url": params.get("return_url") or None,
                "url": f"{self.url}/p/session/{session_id}",
            }
        )
        return self._render(session)

    # -- events, payment methods, webhook endpoints, empty lists -------------------------------------
    def _event_list(self, call: _Call) -> Obj:
        """GET /v1/events (filters: type with `*` wildcard, types[], created)."""
        events = self._of_type("event")
        if "type" in call.params:
            pattern = re.compile(re.escape(call.params["type"]).replace(r"\*", ".*"))
            events = [e for e in events if pattern.fullmatch(e["type"])]
        if "types" in call.params:
            wanted = set(_as_list(call.params["types"], "types"))
            events = [e for e in events if e["type"] in wanted]
        return self._list(call, events)

    def _event_retrieve(self, call: _Call) -> Obj:
        """GET /v1/events/:id."""
        return self._render(self._get(call.ids["id"], "event", "event"))

    def _payment_method_list(self, call: _Call) -> Obj:
        """GET /v1/payment_methods?customer=..."""
        methods = self._of_type("payment_method")
        for field in ("customer", "type"):
            if field in call.params:
                methods = [m for m in methods if m[field] == call.params[field]]
        return self._list(call, methods)

    def _payment_method_retrieve(self, call: _Call) -> Obj:
        """GET /v1/payment_methods/:id."""
        return self._render(self._get(call.ids["id"], "payment_method", "PaymentMethod"))

    def _webhook_endpoint_create(self, call: _Call) -> Obj:
        """POST /v1/webhook_endpoints: the only response that carries the signing `secret`."""
        params = call.params
        if not params.get("url"):
            raise _required("url")
        if not params.get("enabled_events"):
            raise _required("enabled_events")
        endpoint = self._new_webhook_endpoint(
            params["url"],
            [str(e) for e in _as_list(params["enabled_events"], "enabled_events")],
            _merge_metadata({}, params.get("metadata", {})),
            livemode=call.livemode,
        )
        if params.get("api_version"):
            endpoint["api_version"] = params["api_version"]
        endpoint["description"] = params.get("description") or None
        return self._render(endpoint)

    def _webhook_endpoint_public(self, endpoint: Obj) -> Obj:
        """A webhook endpoint without its secret (as every response but the create one)."""
        return {k: v for k, v in self._render(endpoint).items() if k != "secret"}

    def _webhook_endpoint_list(self, call: _Call) -> Obj:
        """GET /v1/webhook_endpoints."""
        page = self._list(call, self._of_type("webhook_endpoint"))
        page["data"] = [{k: v for k, v in e.items() if k != "secret"} for e in page["data"]]
        return page

    def _webhook_endpoint_retrieve(self, call: _Call) -> Obj:
        """GET /v1/webhook_endpoints/:id."""
        return self._webhook_endpoint_public(self._get(call.ids["id"], "webhook_endpoint", "webhook endpoint"))

    def _webhook_endpoint_update(self, call: _Call) -> Obj:
        """POST /v1/webhook_endpoints/:id."""
        endpoint = self._get(call.ids["id"], "webhook_endpoint", "webhook endpoint")
        params = call.params
        if "url" in params:
            endpoint["url"] = params["url"]
        if "enabled_events" in params:
            endpoint["enabled_events"] = [str(e) for e in _as_list(params["enabled_events"], "enabled_events")]
        if "disabled" in params:
            endpoint["status"] = "disabled" if _as_bool(params["disabled"], "disabled") else "enabled"
        if "description" in params:
            endpoint["description"] = params["description"] or None
        if "metadata" in params:
            endpoint["metadata"] = _merge_metadata(endpoint["metadata"], params["metadata"])
        return self._webhook_endpoint_public(endpoint)

    def _webhook_endpoint_delete(self, call: _Call) -> Obj:
        """DELETE /v1/webhook_endpoints/:id."""
        endpoint = self._get(call.ids["id"], "webhook_endpoint", "webhook endpoint")
        del self._objects[endpoint["id"]]
        return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}

    # -- hosted pages (what a browser sees at the `url` of a session) --------------------------------
    def _page(self, status: int, title: str, body: str) -> Reply:
        """A minimal HTML page."""
        document = f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>{body}</body></html>"
        return Reply(status, raw=document.encode(), headers={"Content-Type": "text/html; charset=utf-8"})

    def _checkout_page(self, request: RecordedRequest) -> Reply:
        """GET /c/pay/:id: the hosted Checkout page with a 'Subscribe' button."""
        session_id = request.path.rsplit("/", 1)[-1]
        with self._state:
            session = self._objects.get(session_id)
            if session is None or session.get("object") != "checkout.session":
                return self._page(404, "Not found", "<h1>Something went wrong</h1>")
            lines = copy.deepcopy(self._private[session_id]["line_items"])
            email, status = session["customer_email"] or "", session["status"]
        rows = "".join(
            f"<li>{html.escape(line['description'])}: {line['amount_total'] / 100:.2f} {line['currency'].upper()}</li>"
            for line in lines
        )
        if status != "open":
            return self._page(410, "Checkout", f"<h1>This Checkout Session is {status}</h1>")
        form = (
            f'<form method="post" action="/c/pay/{session_id}"><label>Email <input name="email"'
            f' value="{html.escape(email)}"></label> <button type="submit">Subscribe</button></form>'
        )
        return self._page(200, "Checkout", f"<h1>Fake Stripe Checkout</h1><ul>{rows}</ul>{form}")

    def _checkout_pay(self, request: RecordedRequest) -> Reply:
        """POST /c/pay/:id: complete the session, deliver its events, redirect to `success_url`."""
        session_id = request.path.rsplit("/", 1)[-1]
        email = parse_form(request.body.decode()).get("email") or None
        try:
            events = self.complete_checkout(session_id, email=email)
        except (StripeApiError, ValueError) as exc:
            return self._page(400, "Checkout", f"<h1>{html.escape(str(exc))}</h1>")
        self.deliver(events)
        success_url = (self.get(session_id)["success_url"] or self.url).replace("{CHECKOUT_SESSION_ID}", session_id)
        return Reply(303, raw=b"", headers={"Location": success_url, "Content-Type": "text/html"})

    def _portal_page(self, request: RecordedRequest) -> Reply:
        """GET /p/session/:id: the customer portal with the customer's subscriptions and a cancel button."""
        session_id = request.path.split("/")[3]
        with self._state:
            session = self._objects.get(session_id)
            if session is None or session.get("object") != "billing_portal.session":
                return self._page(404, "Not found", "<h1>Something went wrong</h1>")
            subscriptions = [
                self._render(s)
                for s in self._of_type("subscription")
                if s["customer"] == session["customer"] and s["status"] != "canceled"
            ]
        rows = []
        for sub in subscriptions:
            names = ", ".join(self.get(item["price"]["product"])["name"] for item in sub["items"]["data"])
            action = f"/p/session/{session_id}/cancel/{quote(sub['id'])}"
            button = (
                ""
                if sub["cancel_at_period_end"]
                else f'<form method="post" action="{action}"><button>Cancel plan</button></form>'
            )
            rows.append(f"<li>{html.escape(names)} ({sub['status']}){button}</li>")
        back = html.escape(session["return_url"] or "")
        return self._page(
            200,
            "Billing",
            f'<h1>Fake customer portal</h1><ul>{"".join(rows)}</ul><a href="{back}">Return</a>',
        )

    def _portal_cancel(self, request: RecordedRequest) -> Reply:
        """POST /p/session/:id/cancel/:sub: cancel at period end (the portal's default), deliver, go back."""
        parts = urlsplit(request.path).path.split("/")
        if len(parts) != 6 or parts[4] != "cancel":
            return self._page(404, "Not found", "<h1>Something went wrong</h1>")
        session_id, sub_id = parts[3], parts[5]
        with self._state:
            session = self._objects.get(session_id)
            subscription = self._objects.get(sub_id)
            if (
                session is None
                or subscription is None
                or subscription.get("object") != "subscription"
                or subscription["customer"] != session["customer"]
            ):
                return self._page(404, "Not found", "<h1>Something went wrong</h1>")
            before = self._render(subscription)
            self._schedule_cancel(subscription)
            event = self._emit(
                "customer.subscription.updated", subscription, _changed(before, self._render(subscription))
            )
        self.deliver([event])
        return Reply(303, raw=b"", headers={"Location": session["return_url"] or self.url})
