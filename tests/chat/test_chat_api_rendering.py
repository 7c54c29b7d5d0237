"""POST /api/v1/chat answers byte for byte what DRF rendered, whichever path serves it.

The common request (a JSON body, no unusual Accept header, no query string) is served without DRF's request
wrapping; any other goes through DRF. The expected bytes below are what the DRF view rendered before the
direct path existed; each case is also sent in a form DRF serves (an Accept header with a parameter) and must
render the same there.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from chat.services import knowledge_article_create
from tenants.models import Tenant

URL = "/api/v1/chat"
SHIPPING = "We ship to Canada in 3 to 5 business days for 12 dollars."
# Headers the view decides (the rest are the middleware's, the same for every view).
VIEW_HEADERS = ("Content-Type", "Allow", "Retry-After", "WWW-Authenticate", "Access-Control-Allow-Origin", "Vary")
# DRF serves a request whose Accept header carries a parameter; the rendering is the same.
THROUGH_DRF = {"Accept": "application/json;q=0.9"}
JSON = "application/json"


def _headers(response: Any) -> dict[str, str]:
    return {name: response[name] for name in VIEW_HEADERS if response.has_header(name)}


def _error(code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _invalid(fields: dict[str, Any]) -> bytes:
    return _error("invalid", "The request is invalid.", {"fields": fields})


ERRORS = {"Content-Type": JSON, "Allow": "POST, OPTIONS", "Vary": "origin"}


@pytest.fixture
def shop(tenant: Tenant) -> Tenant:
    with tenant_context(tenant):
        tenant.article_id = knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING).pk
    return tenant


def _post(client: Any, body: Any, *, token: str | None, extra: dict[str, str], content_type: str = JSON) -> Any:
    headers = dict(extra)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, raw, content_type=content_type, headers=headers)


BAD_BODIES = [
    pytest.param(
        {"session_id": "", "message": "x" * 4001, "visitor": {"email": "nope", "name": 5}},
        _invalid(
            {
                "session_id": ["This field may not be blank."],
                "message": ["Ensure this field has no more than 4000 characters."],
                "visitor": {"name": ["Expected a string."]},
            }
        ),
        id="field-errors",
    ),
    pytest.param(
        {"conversation_token": " ", "message": "a\x00\ud800b", "visitor": {"email": "nope", "name": "x" * 201}},
        _invalid(
            {
                "conversation_token": ["This field may not be blank."],
                "message": ["Null characters are not allowed.", "Surrogate characters are not allowed: U+D800."],
                "visitor": {
                    "name": ["Ensure this field has no more than 200 characters."],
                    "email": ["Enter a valid email address."],
                },
            }
        ),
        id="every-validator",
    ),
    pytest.param(
        {"session_id": 3, "message": None, "visitor": []},
        _invalid({"session_id": ["Expected a string."], "visitor": ["Expected an object."]}),
        id="json-types",
    ),
    pytest.param(
        {"visitor": None},
        _invalid({"message": ["This field is required."], "visitor": ["This field may not be null."]}),
        id="missing-and-null",
    ),
    pytest.param(
        {"session_id": "a", "conversation_token": "b", "message": "hi"},
        _invalid({"non_field_errors": ["Send either session_id (new) or conversation_token (continue)."]}),
        id="both-ids",
    ),
    pytest.param("null", _invalid({"non_field_errors": ["No data provided"]}), id="null"),
    pytest.param("", _invalid({"message": ["This field is required."]}), id="empty-body"),
    pytest.param(
        "[1]", _invalid({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}), id="list"
    ),
    pytest.param(
        "{nope",
        _error(
            "malformed",
            "JSON parse error - Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        id="malformed",
    ),
    pytest.param(
        '{"message": NaN}',
        _error("malformed", "JSON parse error - Out of range float values are not JSON compliant: 'NaN'"),
        id="nan",
    ),
    pytest.param(
        b'{"message": "caf\xc3',
        _error("malformed", "JSON parse error - Unterminated string starting at: line 1 column 13 (char 12)"),
        id="truncated-utf8",
    ),
    pytest.param(
        b'{"message": "\xff"}',
        _error(
            "malformed", "JSON parse error - 'utf-8' codec can't decode byte 0xff in position 13: invalid start byte"
        ),
        id="invalid-utf8",
    ),
]


@pytest.mark.parametrize("extra", [{}, THROUGH_DRF], ids=["direct", "drf"])
@pytest.mark.parametrize(("body", "expected"), BAD_BODIES)
def test_a_bad_body_is_the_same_400(client, shop, extra, body, expected):
    response = _post(client, body, token=shop.chat_token, extra=extra)

    assert (response.status_code, _headers(response), response.content) == (400, ERRORS, expected)


@pytest.mark.parametrize("extra", [{}, THROUGH_DRF], ids=["direct", "drf"])
def test_a_first_turn_is_the_same_200(client, shop, extra):
    response = _post(
        client, {"session_id": "s1", "message": "Do you ship to Canada?"}, token=shop.chat_token, extra=extra
    )

    answer = response.json()
    assert (response.status_code, _headers(response)) == (200, ERRORS)
    assert list(answer) == [
        "conversation_id",
        "conversation_token",
        "message_id",
        "reply",
        "intent",
        "handoff",
        "lead_captured",
        "sources",
    ]
    assert re.fullmatch(r"[\w-]+:[\w-]+:[\w-]+", answer["conversation_token"])
    expected = {
        **answer,
        "reply": SHIPPING,
        "intent": "other",
        "handoff": False,
        "lead_captured": False,
        "sources": [{"id": shop.article_id, "title": "Shipping"}],
    }
    assert response.content == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("extra", [{}, THROUGH_DRF], ids=["direct", "drf"])
def test_refusals_are_the_same(client, shop, other_tenant, settings, extra):
    token = shop.chat_token
    _post(client, {"session_id": "taken", "message": "hi"}, token=token, extra=extra)

    def post(body: Any, *, token: str | None = token, more: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return _post(client, body, token=token, extra={**extra, **(more or {})}, **kwargs)

    answers = {
        "no-credentials": post({"message": "hi"}, token=None),
        "unknown-token": post({"message": "hi"}, token="nope"),
        "taken-session": post({"session_id": "taken", "message": "hi"}),
        "forged-conversation-token": post({"conversation_token": "zzz", "message": "hi"}),
        "not-json": post({"message": "hi"}, content_type="text/plain"),
    }
    Tenant.objects.filter(pk=other_tenant.pk).update(chat_allowed_origins=["https://shop.example"])
    answers["foreign-origin"] = post(
        {"message": "hi"}, token=other_tenant.chat_token, more={"Origin": "https://x.example"}
    )
    Tenant.objects.filter(pk=shop.pk).update(subscription_status="canceled")
    answers["inactive"] = post({"message": "hi"})

    assert {name: (r.status_code, _headers(r), r.content) for name, r in answers.items()} == {
        "no-credentials": (401, ERRORS, _error("unauthenticated", "Send 'Authorization: Bearer <token>'.")),
        "unknown-token": (401, ERRORS, _error("unauthenticated", "Unknown chat token.")),
        "taken-session": (
            409,
            ERRORS,
            _error(
                "conversation_exists",
                "This session already has a conversation: continue it with its conversation_token.",
                {"field": "session_id"},
            ),
        ),
        "forged-conversation-token": (
            400,
            ERRORS,
            _error(
                "conversation_token_invalid",
                "The conversation token is not valid (forged, expired, or for another conversation).",
                {"field": "conversation_token"},
            ),
        ),
        "not-json": (415, ERRORS, _error("unsupported_media_type", "Send a JSON body.")),
        "foreign-origin": (
            403,
            ERRORS,
            _error("forbidden", "This website may not use this chat token.", {"reason": "origin_not_allowed"}),
        ),
        "inactive": (
            402,
            ERRORS,
            _error("payment_required", "The subscription is not active.", {"reason": "subscription_inactive"}),
        ),
    }


@pytest.mark.parametrize("extra", [{}, THROUGH_DRF], ids=["direct", "drf"])
def test_an_allowed_origin_gets_cors_headers(client, shop, extra):
    Tenant.objects.filter(pk=shop.pk).update(chat_allowed_origins=["https://shop.example"])

    response = _post(
        client, {"message": "hello"}, token=shop.chat_token, extra={**extra, "Origin": "https://shop.example"}
    )

    assert (response.status_code, _headers(response)) == (
        200,
        {**ERRORS, "Access-Control-Allow-Origin": "https://shop.example"},
    )


@pytest.mark.parametrize("extra", [{}, THROUGH_DRF], ids=["direct", "drf"])
def test_a_rate_limited_request_is_the_same_429(client, shop, settings, extra):
    settings.CHAT_RATE_PER_TOKEN = "1/m"
    _post(client, {"message": "hi"}, token=shop.chat_token, extra=extra)

    response = _post(client, {"message": "hi"}, token=shop.chat_token, extra=extra)

    retry_after = response.json()["error"]["details"]["retry_after"]
    assert 1 <= retry_after <= 60
    assert (response.status_code, _headers(response), response.content) == (
        429,
        {**ERRORS, "Retry-After": str(retry_after)},
        _error("rate_limited", "Too many requests. Retry later.", {"limit": 1, "retry_after": retry_after}),
    )


@pytest.mark.parametrize(
    ("accept", "status", "content"),
    [
        ("text/html", 406, _error("not_acceptable", "Could not satisfy the request Accept header.")),
        ("", 406, _error("not_acceptable", "Could not satisfy the request Accept header.")),
        (
            "application/json; indent=2",
            400,
            json.dumps(json.loads(_invalid({"visitor": ["Expected an object."]})), indent=2).encode(),
        ),
    ],
)
def test_what_drf_negotiates_is_still_negotiated(client, shop, accept, status, content):
    response = _post(client, {"message": "hi", "visitor": 1}, token=shop.chat_token, extra={"Accept": accept})

    assert (response.status_code, response.content) == (status, content)
