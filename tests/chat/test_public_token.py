"""The public chat token is in every widget: what limits what anyone holding it can do."""

from __future__ import annotations

import time

import pytest
from django.core import signing
from django_tenants.utils import tenant_context

from billing.models import Plan, UsagePeriod
from chat.models import BotConfiguration, Conversation, Message
from chat.selectors import conversation_token_salt
from chat.services import knowledge_article_create
from tenants.audit import SYSTEM
from tenants.models import Tenant
from tenants.services import api_key_create, chat_token_rotate

URL = "/api/v1/chat"


def chat(client, token, body, **extra):
    return client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


@pytest.fixture
def customer(client, tenant):
    _, secret = api_key_create(tenant=tenant, name="owner", actor=SYSTEM)

    def call(method, path, body=None):
        kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
        return getattr(client, method)(f"/api/v1/customer/{path}", HTTP_AUTHORIZATION=f"Bearer {secret}", **kwargs)

    return call


# --- Rotation ------------------------------------------------------------------------------------------------------
def test_rotating_the_token_invalidates_the_old_one_at_once(client, tenant, customer):
    old = tenant.chat_token
    assert chat(client, old, {"message": "hi"}).status_code == 200

    response = customer("post", "chat-token")

    new = response.json()["chat_token"]
    assert response.status_code == 200
    assert new != old
    assert new == Tenant.objects.get(pk=tenant.pk).public_token
    assert chat(client, old, {"message": "hi"}).status_code == 401
    assert chat(client, new, {"message": "hi"}).status_code == 200


# --- Settings: origins and the hourly cap ----------------------------------------------------------------------------
def test_chat_settings_normalise_origins_and_bound_the_cap(customer, tenant, settings):
    settings.CHAT_TENANT_TURNS_PER_HOUR = 100

    saved = customer("patch", "chat-settings", {"allowed_origins": ["HTTPS://Shop.Example:443/"], "turns_per_hour": 40})
    bad_origin = customer("patch", "chat-settings", {"allowed_origins": ["https://shop.example/path"]})
    too_many = customer("patch", "chat-settings", {"turns_per_hour": 101})

    assert saved.status_code == 200
    assert saved.json() == {
        "chat_token": tenant.public_token,
        "allowed_origins": ["https://shop.example"],
        "turns_per_hour": 40,
        "turns_per_hour_max": 100,
    }
    assert (bad_origin.status_code, bad_origin.json()["error"]["details"]["field"]) == (400, "allowed_origins")
    assert (too_many.status_code, too_many.json()["error"]["details"]["max"]) == (400, 100)
    tenant.refresh_from_db()
    assert (tenant.chat_allowed_origins, tenant.chat_turns_per_hour) == (["https://shop.example"], 40)


def test_a_tenants_anonymous_turns_are_capped_per_hour_whatever_the_ips(client, tenant, other_tenant, settings):
    settings.CHAT_TENANT_TURNS_PER_HOUR = 3
    Tenant.objects.filter(pk=tenant.pk).update(chat_turns_per_hour=2)

    statuses = [chat(client, tenant.chat_token, {"message": "hi"}, REMOTE_ADDR=f"198.51.100.{n}") for n in range(3)]
    other = [chat(client, other_tenant.chat_token, {"message": "hi"}, REMOTE_ADDR=f"203.0.113.{n}") for n in range(4)]

    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json()["error"]["details"]["limit"] == 2
    assert [r.status_code for r in other] == [200, 200, 200, 429]
    with tenant_context(tenant):
        assert Message.objects.filter(role="visitor").count() == 2


def _tenant_turns_counted(tenant: Tenant, per_hour: int) -> int:
    """django-ratelimit's count of the tenant's hourly cap (0 when nothing was counted)."""
    from django.test import RequestFactory
    from django_ratelimit.core import get_usage

    usage = get_usage(
        RequestFactory().post(URL), group="chat:tenant", key=lambda g, r: str(tenant.pk), rate=f"{per_hour}/h"
    )
    return usage["count"] if usage else 0


def test_the_cap_counts_only_turns_of_the_tenant_the_token_still_opens_from_an_allowed_origin(client, tenant, settings):
    """The cap is counted with the IP and token limits when the worker knows the token's tenant: never for a
    token rotated meanwhile, nor for an origin the tenant refuses."""
    settings.CHAT_TENANT_TURNS_PER_HOUR = 50
    Tenant.objects.filter(pk=tenant.pk).update(chat_allowed_origins=["https://shop.example"])
    old_token = Tenant.objects.get(pk=tenant.pk).public_token
    first = chat(client, old_token, {"message": "hi"})  # the worker now knows the token's tenant
    refused = chat(client, old_token, {"message": "hi"}, HTTP_ORIGIN="https://evil.example")
    counted_before_rotation = _tenant_turns_counted(tenant, 50)

    chat_token_rotate(tenant=Tenant.objects.get(pk=tenant.pk), actor=SYSTEM)
    rotated = chat(client, old_token, {"message": "hi"})

    assert [first.status_code, refused.status_code, rotated.status_code] == [200, 403, 401]
    assert (counted_before_rotation, _tenant_turns_counted(tenant, 50)) == (1, 1)


@pytest.mark.parametrize("accept", [None, "application/json;q=0.9"], ids=["direct", "drf"])
def test_a_capped_turn_from_an_allowed_origin_gets_cors_headers_an_ip_limited_one_none(
    client, tenant, settings, accept
):
    settings.CHAT_TENANT_TURNS_PER_HOUR = 2
    Tenant.objects.filter(pk=tenant.pk).update(chat_allowed_origins=["https://shop.example"])
    extra = {"HTTP_ORIGIN": "https://shop.example", **({"HTTP_ACCEPT": accept} if accept else {})}

    answers = [chat(client, tenant.chat_token, {"message": "hi"}, **extra) for _ in range(3)]
    settings.CHAT_RATE_PER_IP = "1/m"
    chat(client, tenant.chat_token, {"message": "hi"}, REMOTE_ADDR="10.1.1.1", **extra)
    ip_limited = chat(client, tenant.chat_token, {"message": "hi"}, REMOTE_ADDR="10.1.1.1", **extra)

    assert [(r.status_code, r.get("Access-Control-Allow-Origin")) for r in [*answers, ip_limited]] == [
        (200, "https://shop.example"),
        (200, "https://shop.example"),
        (429, "https://shop.example"),
        (429, None),
    ]
    assert answers[2].json()["error"]["details"]["limit"] == 2
    assert _tenant_turns_counted(tenant, 2) == 4  # the IP-limited turn was not counted


# --- Metering and models ---------------------------------------------------------------------------------------------
def test_answers_served_from_the_cache_are_not_ai_replies(client, tenant):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Hours", content="We open at 9:00 every weekday.")

    first = chat(client, tenant.chat_token, {"message": "When do you open?"}).json()
    second = chat(client, tenant.chat_token, {"message": "When do you open?"}).json()

    assert second["reply"] == first["reply"] == "We open at 9:00 every weekday."
    with tenant_context(tenant):
        assert Message.objects.filter(role="bot", from_cache=True).count() == 1
    assert UsagePeriod.objects.get(tenant=tenant).ai_replies == 1


def test_the_model_comes_from_the_plans_allow_list(customer, tenant, settings):
    settings.OPENAI_MODEL = "gpt-4o-mini"
    settings.LLM_MODELS = ["gpt-4o-mini", "gpt-4o", "o1-pro"]
    Plan.objects.filter(is_default=True).update(llm_models=["gpt-4o", "not-offered"])

    refused = customer("patch", "bot", {"llm_model": "o1-pro"})
    not_offered = customer("patch", "bot", {"llm_model": "not-offered"})
    allowed = customer("patch", "bot", {"llm_model": "gpt-4o"})

    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {
        "fields": {"llm_model": ["Not on this plan: choose one of gpt-4o-mini, gpt-4o."]},
        "allowed": ["gpt-4o-mini", "gpt-4o"],
    }
    assert not_offered.status_code == 400
    assert allowed.json()["llm_model"] == "gpt-4o"


def test_a_model_the_plan_no_longer_allows_falls_back_to_the_default(client, tenant, settings, fake_openai):
    settings.OPENAI_MODEL = "gpt-4o-mini"
    settings.LLM_MODELS = ["gpt-4o-mini", "gpt-4o"]
    with tenant_context(tenant):
        BotConfiguration.objects.update_or_create(pk=1, defaults={"llm_model": "gpt-4o"})

    chat(client, tenant.chat_token, {"message": "When do you open?"})

    assert fake_openai.completion_requests()[-1].json()["model"] == "gpt-4o-mini"


# --- Conversations are continued by a server-issued token ----------------------------------------------------------
def test_the_first_turn_returns_a_signed_token_that_continues_the_conversation(client, tenant):
    first = chat(client, tenant.chat_token, {"session_id": "visitor-42", "message": "Hello"}).json()
    second = chat(client, tenant.chat_token, {"conversation_token": first["conversation_token"], "message": "Hi"})

    assert second.status_code == 200
    assert second.json()["conversation_id"] == first["conversation_id"]
    with tenant_context(tenant):
        conversation = Conversation.objects.get()
        assert [m.content for m in conversation.messages.filter(role="visitor")] == ["Hello", "Hi"]


def test_a_guessed_session_id_never_opens_someone_elses_conversation(client, tenant):
    chat(client, tenant.chat_token, {"session_id": "visitor-42", "message": "My email is ana@example.com"})

    guessed = chat(client, tenant.chat_token, {"session_id": "visitor-42", "message": "What did I say?"})

    assert guessed.status_code == 409
    assert guessed.json()["error"]["code"] == "conversation_exists"
    assert "reply" not in guessed.json()
    with tenant_context(tenant):
        assert list(Message.objects.filter(role="visitor").values_list("content", flat=True)) == [
            "My email is ana@example.com"
        ]


def test_forged_or_foreign_conversation_tokens_are_refused(client, tenant, other_tenant):
    mine = chat(client, tenant.chat_token, {"message": "Hello"}).json()
    with tenant_context(tenant):
        public_id = str(Conversation.objects.get().public_id)
    forged = signing.dumps(public_id, salt="something-else")

    answers = [
        chat(client, tenant.chat_token, {"conversation_token": forged, "message": "x"}),
        chat(client, tenant.chat_token, {"conversation_token": public_id, "message": "x"}),
        chat(client, other_tenant.chat_token, {"conversation_token": mine["conversation_token"], "message": "x"}),
    ]

    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(400, "conversation_token_invalid")] * 3
    with tenant_context(tenant):
        assert Message.objects.filter(role="visitor").count() == 1
    with tenant_context(other_tenant):
        assert Message.objects.count() == 0


def test_an_expired_conversation_token_is_refused(client, tenant, settings):
    first = chat(client, tenant.chat_token, {"message": "Hello"}).json()
    settings.CHAT_CONVERSATION_TOKEN_MAX_AGE = -1

    response = chat(client, tenant.chat_token, {"conversation_token": first["conversation_token"], "message": "x"})

    assert response.status_code == 400


def test_the_conversation_token_is_the_one_djangos_signing_makes(client, tenant, settings):
    salt = conversation_token_salt(tenant=tenant)
    assert chat(client, tenant.chat_token, {"message": "Hello"}).status_code == 200
    settings.SECRET_KEY = "another-secret-key-for-this-test-0123456789-abcdefghijklmnopqrstuvwxyz"
    started = int(time.time())

    answer = chat(client, tenant.chat_token, {"message": "Hello"}).json()

    ended = int(time.time())
    token, public_id = answer["conversation_token"], answer["conversation_id"]
    value, timestamp, _ = token.split(":")
    # The JSON of the id, the time it was issued, and the signature Django's signer makes of both with the
    # SECRET_KEY in force (not the one the first token was signed with).
    assert value == signing.dumps(public_id, salt=salt).split(":")[0]
    assert started <= signing.b62_decode(timestamp) <= ended
    assert token == signing.Signer(salt=salt).sign(f"{value}:{timestamp}")
    assert signing.loads(token, salt=salt) == public_id
