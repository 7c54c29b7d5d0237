"""POST /api/v1/chat through real HTTP handling, real PostgreSQL schemas and a real (local) OpenAI server."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.db.models import DateTimeField, F
from django.utils import timezone
from django_tenants.utils import tenant_context
from prometheus_client import REGISTRY

from chat.api.public import ChatMessageCreateApi
from chat.models import Conversation, Lead, Message
from chat.services import bot_configuration_update, knowledge_article_create, lead_update
from chat.tasks import lead_notifications_sweep, lead_notify
from tenants.models import Tenant
from tests.probes import TransactionProbe

URL = "/api/v1/chat"


def post(client, token, body, **extra):
    return client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


@pytest.fixture
def acme(tenant):
    with tenant_context(tenant):
        knowledge_article_create(
            tenant=tenant,
            title="Opening hours",
            content="We are open Monday to Friday from 9:00 to 18:00. Closed on Sundays.",
        )
        knowledge_article_create(
            tenant=tenant, title="Shipping", content="We ship to Canada in 3 to 5 business days for 12 dollars."
        )
    return tenant


@pytest.fixture
def globex(other_tenant):
    with tenant_context(other_tenant):
        knowledge_article_create(
            tenant=other_tenant, title="Clinic hours", content="The clinic opens at 7:30 on weekdays."
        )
    return other_tenant


def test_offline_responder_answers_from_the_best_passage(client, acme):
    response = post(client, acme.chat_token, {"session_id": "s1", "message": "Do you ship to Canada?"})

    assert response.status_code == 200
    body = response.json()
    assert body["reply"] == "We ship to Canada in 3 to 5 business days for 12 dollars."
    assert body["handoff"] is False
    assert body["lead_captured"] is False
    with tenant_context(acme):
        article_id = Message.objects.get(role="bot").sources[0]["id"]
        conversation = Conversation.objects.get()
        assert [(m.role, m.content) for m in conversation.messages.all()] == [
            ("visitor", "Do you ship to Canada?"),
            ("bot", "We ship to Canada in 3 to 5 business days for 12 dollars."),
        ]
    assert body["sources"] == [{"id": article_id, "title": "Shipping"}]
    assert body["conversation_id"] == str(conversation.public_id)
    # The view builds its answer without the output serializer: it must be exactly what the schema says.
    output = ChatMessageCreateApi.OutputSerializer(data=body)
    assert output.is_valid(), output.errors
    assert ChatMessageCreateApi.OutputSerializer(output.validated_data).data == body


def test_offline_responder_says_honestly_when_nothing_matches(client, acme):
    body = post(client, acme.chat_token, {"session_id": "s1", "message": "Do you sell bicycles?"}).json()

    assert body["reply"].startswith("I'm sorry, I don't have information about that.")
    assert "member of our team" in body["reply"]
    assert body["sources"] == []


def test_llm_prompt_holds_this_tenants_passages_and_persona_only(client, acme, globex, fake_openai):
    with tenant_context(acme):
        bot_configuration_update(
            tenant=acme, bot_name="Ada", persona="the cheerful helper of Acme", business_facts="Phone 555"
        )

    body = post(client, acme.chat_token, {"session_id": "s1", "message": "When are you open?"}).json()

    system = fake_openai.last_messages()[0]["content"]
    assert "You are Ada, the cheerful helper of Acme" in system
    assert "Acme Test Shop" in system
    assert "Opening hours: We are open Monday to Friday from 9:00 to 18:00." in system
    assert "Clinic" not in system
    assert "7:30" not in system
    assert fake_openai.last_messages()[-1] == {"role": "user", "content": "When are you open?"}
    assert body["reply"].startswith("According to [1]")
    with tenant_context(acme):
        bot = Message.objects.get(role="bot")
        assert bot.llm_model == "gpt-4o-mini"
        assert (bot.prompt_tokens, bot.completion_tokens) == (
            len(" ".join(m["content"] for m in fake_openai.last_messages()).split()),
            len(body["reply"].split()),
        )
        assert bot.latency_ms is not None


def test_two_tenants_never_see_each_others_knowledge(client, acme, globex, fake_openai):
    post(client, globex.chat_token, {"session_id": "s1", "message": "When does the clinic open?"})

    system = fake_openai.last_messages()[0]["content"]
    assert "Clinic hours: The clinic opens at 7:30 on weekdays." in system
    assert "Canada" not in system
    assert "Monday to Friday" not in system
    with tenant_context(acme):
        assert Conversation.objects.count() == 0


@pytest.mark.parametrize(
    ("status", "error"), [(429, "RateLimitError"), (500, "InternalServerError"), (503, "InternalServerError")]
)
def test_llm_failures_give_the_fallback_reply_and_are_counted(client, acme, fake_openai, status, error):
    fake_openai.fail_with(status, times=1)
    failures_before = REGISTRY.get_sample_value("netia_llm_requests_total", {"outcome": error}) or 0

    response = post(client, acme.chat_token, {"session_id": "s1", "message": "When are you open?"})

    assert response.status_code == 200
    assert response.json()["reply"].startswith("Sorry, I can't answer right now.")
    assert REGISTRY.get_sample_value("netia_llm_requests_total", {"outcome": error}) == failures_before + 1
    with tenant_context(acme):
        assert Message.objects.get(role="bot").is_fallback is True


def test_chat_keeps_working_when_redis_is_gone(client, acme, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }

    response = post(client, acme.chat_token, {"session_id": "s1", "message": "Do you ship to Canada?"})

    assert response.status_code == 200
    assert response.json()["reply"] == "We ship to Canada in 3 to 5 business days for 12 dollars."


def test_llm_timeout_gives_the_fallback_reply(client, acme, fake_openai, settings):
    settings.OPENAI_TIMEOUT = 0.3
    fake_openai.delay(2)

    body = post(client, acme.chat_token, {"session_id": "s1", "message": "When are you open?"}).json()

    assert body["reply"].startswith("Sorry, I can't answer right now.")


def test_retries_recover_from_one_server_error(client, acme, fake_openai, settings):
    settings.OPENAI_MAX_RETRIES = 1
    fake_openai.fail_with(500, times=1)

    body = post(client, acme.chat_token, {"session_id": "s1", "message": "When are you open?"}).json()

    assert body["reply"].startswith("According to [1]")
    assert len(fake_openai.completion_requests()) == 2


def test_model_judging_it_cannot_answer_hands_off(client, acme, fake_openai):
    fake_openai.set_reply("[[HANDOFF]]")

    body = post(client, acme.chat_token, {"session_id": "s1", "message": "Can I pay with goats?"}).json()
    again = post(
        client, acme.chat_token, {"conversation_token": body["conversation_token"], "message": "Hello?"}
    ).json()

    assert body["handoff"] is True
    assert body["reply"] == "I'm passing you to a member of our team. They will reply here shortly."
    assert (again["reply"], again["handoff"]) == (None, True)
    with tenant_context(acme):
        conversation = Conversation.objects.get()
        assert (conversation.status, conversation.handoff_reason) == ("human", "bot_cannot_answer")
    assert len(fake_openai.completion_requests()) == 1


def test_identical_first_questions_are_answered_from_the_cache_until_knowledge_changes(client, acme, fake_openai):
    first = post(client, acme.chat_token, {"session_id": "a", "message": "When are you open?"}).json()
    second = post(client, acme.chat_token, {"session_id": "b", "message": "when are you OPEN"}).json()
    assert second["reply"] == first["reply"]
    assert len(fake_openai.completion_requests()) == 1

    with tenant_context(acme):
        knowledge_article_create(tenant=acme, title="Holidays", content="We are closed on public holidays.")
    post(client, acme.chat_token, {"session_id": "c", "message": "When are you open?"})
    assert len(fake_openai.completion_requests()) == 2

    with tenant_context(acme):
        bot_configuration_update(tenant=acme, tone="formal")
    post(client, acme.chat_token, {"session_id": "d", "message": "When are you open?"})
    assert len(fake_openai.completion_requests()) == 3
    with tenant_context(acme):
        assert Message.objects.filter(role="bot", from_cache=True).count() == 1


def test_follow_up_questions_are_not_cached_and_carry_history(client, acme, fake_openai):
    first = post(client, acme.chat_token, {"session_id": "a", "message": "When are you open?"}).json()
    post(client, acme.chat_token, {"conversation_token": first["conversation_token"], "message": "When are you open?"})

    assert len(fake_openai.completion_requests()) == 2
    roles = [m["role"] for m in fake_openai.last_messages()]
    assert roles == ["system", "user", "assistant", "user"]


def test_contact_details_create_one_lead_per_conversation_and_notify_the_owner(
    client, acme, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, acme.chat_token, {"session_id": "s", "message": "I'd like to book a table"}).json()
        second = post(
            client,
            acme.chat_token,
            {
                "conversation_token": first["conversation_token"],
                "message": "My name is Ana Pérez, ana@example.com, +1 415 555 2671",
            },
        ).json()

    assert first["intent"] == "booking"
    assert (first["lead_captured"], second["lead_captured"]) == (False, True)
    with tenant_context(acme):
        lead = Lead.objects.get()
        assert lead.contact_info == {"name": "Ana Pérez", "email": "ana@example.com", "phone": "+14155552671"}
        assert (lead.intent, lead.status) == ("booking", "new")
        assert lead.notified_at is not None
    assert [m.to for m in mailoutbox] == [["owner@acme.test"]]
    assert "ana@example.com" in mailoutbox[0].body
    assert mailoutbox[0].alternatives[0][1] == "text/html"


def test_a_lead_is_emailed_once_however_often_its_details_grow_or_its_task_runs(
    client, acme, smtp, django_capture_on_commit_callbacks
):
    probe = TransactionProbe()
    smtp.on_data = lambda mail: probe("smtp")
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, acme.chat_token, {"session_id": "s", "message": "I'm Ana, my email is ana@example.com"})
        token = first.json()["conversation_token"]
        post(client, acme.chat_token, {"conversation_token": token, "message": "and my phone is +1 415 555 2671"})
    with tenant_context(acme):
        lead = Lead.objects.get()
    lead_notify.delay(schema_name=acme.schema_name, lead_id=lead.pk)  # a duplicate delivery of the task

    (mail,) = smtp.messages
    assert (mail.recipients, mail.message["Message-ID"]) == (
        ["owner@acme.test"],
        f"<lead-{acme.schema_name}-{lead.pk}@netia>",
    )
    assert "ana@example.com" in mail.message.get_body(("plain",)).get_content()
    assert probe.seen == [("smtp", 0)]  # no transaction (no lock on the lead) while the mail server talks


def _time_passes(delta: timedelta) -> None:
    """Every lead timestamp (caller in the tenant's schema) moves `delta` into the past, as if it had gone by."""
    stamps = [f.name for f in Lead._meta.fields if isinstance(f, DateTimeField)]
    Lead.objects.update(**{name: F(name) - delta for name in stamps})


def test_a_lead_email_the_mail_server_kept_refusing_is_sent_once_by_the_sweep(
    client, acme, smtp, settings, django_capture_on_commit_callbacks
):
    smtp.fail_next(times=100)  # every try of the task (retries included) is refused
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, acme.chat_token, {"session_id": "s", "message": "ana@example.com here"})
    with tenant_context(acme):
        lead = Lead.objects.get()
        refused = (lead.notified_at, lead.notify_claimed_at)
        _time_passes(timedelta(hours=1))
    settings.NOTIFICATION_SWEEP_GRACE_SECONDS = 60
    smtp.clear_failures()

    queued = lead_notifications_sweep()

    assert response.status_code == 200
    assert refused == (None, None)  # the claim was given back for the retry
    assert queued == 1
    (mail,) = smtp.messages
    assert mail.recipients == ["owner@acme.test"]
    assert lead_notifications_sweep() == 0


def test_a_lead_email_whose_recipient_is_refused_for_good_is_given_up_not_retried_forever(
    client, acme, smtp, settings, django_capture_on_commit_callbacks
):
    smtp.refuse("owner@acme.test")  # 550: no such mailbox
    given_up_before = REGISTRY.get_sample_value("netia_emails_given_up_total", {"kind": "lead"}) or 0
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, acme.chat_token, {"session_id": "s", "message": "ana@example.com here"})
    with tenant_context(acme):
        _time_passes(timedelta(hours=1))
        lead = Lead.objects.get()
    settings.NOTIFICATION_SWEEP_GRACE_SECONDS = 60

    assert response.status_code == 200
    assert (lead.notified_at, lead.notify_attempts, lead.notify_gave_up_at is not None) == (None, 1, True)
    assert (lead.notify_gave_up_reason, "550" in lead.notify_error) == ("refused", True)
    assert REGISTRY.get_sample_value("netia_emails_given_up_total", {"kind": "lead"}) == given_up_before + 1
    assert (lead_notifications_sweep(), smtp.messages) == (0, [])


def test_a_lead_email_the_platform_failed_to_send_with_a_5xx_is_retried_not_given_up(
    client, acme, smtp, settings, django_capture_on_commit_callbacks
):
    # A refused sender (or a wrong SMTP password's 535) is the platform's mistake: giving up at the first 5xx
    # would lose every tenant's emails to one bad setting.
    smtp.refuse_sender("no-reply@netia.localhost")
    settings.DEFAULT_FROM_EMAIL = "Netia <no-reply@netia.localhost>"
    with django_capture_on_commit_callbacks(execute=True):
        post(client, acme.chat_token, {"session_id": "s", "message": "ana@example.com here"})
    with tenant_context(acme):
        _time_passes(timedelta(hours=1))
        refused = Lead.objects.get()
    settings.NOTIFICATION_SWEEP_GRACE_SECONDS = 60
    smtp.clear_failures()  # staff fix the setting

    swept = lead_notifications_sweep()

    with tenant_context(acme):
        lead = Lead.objects.get()
    assert (refused.notify_gave_up_at, refused.notify_attempts, "553" in refused.notify_error) == (None, 1, True)
    assert (swept, lead.notified_at is not None, lead.notify_gave_up_at) == (1, True, None)
    (mail,) = smtp.messages
    assert mail.recipients == ["owner@acme.test"]


TEMPORARY_FAILURE = "(451, b'4.3.0 Temporary failure, try again later')"


def test_a_lead_email_failing_past_its_attempts_or_age_is_given_up(acme, smtp, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS, settings.NOTIFICATION_SWEEP_GRACE_SECONDS = 2, 60
    smtp.fail_next(times=100)  # 451, a temporary failure, every time
    with tenant_context(acme):
        conversation = Conversation.objects.create(channel="api", external_id="s")
        tired = Lead.objects.create(
            conversation=conversation, email="ana@example.com", notify_due_at=timezone.now() - timedelta(hours=1)
        )
        stale = Lead.objects.create(
            conversation=Conversation.objects.create(channel="api", external_id="t"),
            email="bo@example.com",
            notify_due_at=timezone.now() - timedelta(days=3),
            notify_attempts=3,
            notify_error=TEMPORARY_FAILURE,
        )

    for _ in range(2):  # two sweeps, two failed attempts (the stale lead is given up at the first)
        lead_notifications_sweep()
    with tenant_context(acme):
        tired.refresh_from_db()
        stale.refresh_from_db()

    assert (tired.notify_attempts, tired.notify_gave_up_at is not None, tired.notified_at) == (2, True, None)
    assert (tired.notify_gave_up_reason, stale.notify_gave_up_reason, stale.notify_gave_up_at is not None) == (
        "attempts",
        "age",
        True,
    )
    # given up for its age: no attempt was made, and the last real error stays for staff
    assert (stale.notify_attempts, stale.notify_error) == (3, TEMPORARY_FAILURE)
    assert lead_notifications_sweep() == 0


def test_a_lead_email_is_too_old_counting_from_when_it_was_due_not_from_the_leads_last_edit(
    client, acme, smtp, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFICATION_SWEEP_GRACE_SECONDS = 60
    smtp.fail_next(times=100)  # the mail server is down for days (451 every time)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, acme.chat_token, {"session_id": "s", "message": "ana@example.com here"})
    with tenant_context(acme):
        _time_passes(timedelta(days=2))  # NOTIFICATION_MAX_AGE_SECONDS is one day
        lead_update(lead=Lead.objects.get(), status="contacted")  # the owner works on the lead in the portal
    smtp.clear_failures()

    swept = lead_notifications_sweep()

    with tenant_context(acme):
        lead = Lead.objects.get()
    assert (lead.status, lead.notified_at, lead.notify_gave_up_reason, lead.notify_gave_up_at is not None) == (
        "contacted",
        None,
        "age",
        True,
    )
    assert (lead.notify_attempts, "451" in lead.notify_error) == (1, True)  # the first attempt's error, kept
    assert (swept, smtp.messages) == (1, [])


def test_a_leads_email_becomes_due_once_with_its_first_contact_details(client, acme):
    first = post(client, acme.chat_token, {"session_id": "s", "message": "I'd like to book a table"}).json()
    token = first["conversation_token"]
    with tenant_context(acme):
        without_contact = Lead.objects.get().notify_due_at
    post(client, acme.chat_token, {"conversation_token": token, "message": "ana@example.com"})
    with tenant_context(acme):
        _time_passes(timedelta(hours=1))
        due = Lead.objects.get().notify_due_at
    post(client, acme.chat_token, {"conversation_token": token, "message": "and my phone is +1 415 555 2671"})

    with tenant_context(acme):
        lead = Lead.objects.get()
    assert without_contact is None
    assert due is not None
    assert (lead.phone, lead.notify_due_at) == ("+14155552671", due)
    assert lead.updated_at - due > timedelta(minutes=59)  # the new detail did not make it due again


def test_a_lead_with_contact_details_but_no_due_time_is_still_swept(acme, smtp, settings):
    # Written by the previous release during a rolling deploy (schema migrated, notify_due_at unknown to it) and
    # its on-commit task lost: the sweep must still send it, and its age counts from the lead's last change.
    settings.NOTIFICATION_SWEEP_GRACE_SECONDS = 60
    with tenant_context(acme):
        lead = Lead.objects.create(
            conversation=Conversation.objects.create(channel="api", external_id="s"), email="ana@example.com"
        )
        Lead.objects.create(conversation=Conversation.objects.create(channel="api", external_id="t"))  # no contact
        _time_passes(timedelta(hours=1))

    swept = lead_notifications_sweep()

    with tenant_context(acme):
        lead.refresh_from_db()
    assert swept == 1
    assert (lead.notified_at is not None, lead.notify_due_at) == (True, lead.updated_at)
    (mail,) = smtp.messages
    assert mail.recipients == ["owner@acme.test"]


def test_the_migration_makes_existing_leads_due_from_their_last_change(acme):
    migration = importlib.import_module("chat.migrations.0010_lead_notify_due_at")
    with tenant_context(acme):
        conversation = Conversation.objects.create(channel="api", external_id="s")
        with_contact = Lead.objects.create(conversation=conversation, email="ana@example.com")
        without = Lead.objects.create(conversation=Conversation.objects.create(channel="api", external_id="t"))
        _time_passes(timedelta(hours=3))

        migration.due_from_last_change(django_apps, None)

        with_contact.refresh_from_db()
        without.refresh_from_db()
    assert with_contact.notify_due_at == with_contact.updated_at
    assert without.notify_due_at is None


def test_handoff_request_moves_to_human_and_silences_the_bot(client, acme):
    body = post(client, acme.chat_token, {"session_id": "s", "message": "Can I talk to a human please?"}).json()
    after = post(
        client, acme.chat_token, {"conversation_token": body["conversation_token"], "message": "Anyone?"}
    ).json()

    assert (body["intent"], body["handoff"]) == ("human_handoff", True)
    assert body["reply"] == "I'm passing you to a member of our team. They will reply here shortly."
    assert (after["reply"], after["handoff"]) == (None, True)
    with tenant_context(acme):
        assert Message.objects.filter(role="visitor").count() == 2
        assert Conversation.objects.get().status == "human"


def test_tenant_handoff_keywords_hand_off(client, acme):
    with tenant_context(acme):
        bot_configuration_update(tenant=acme, handoff_keywords=["wholesale"])

    body = post(client, acme.chat_token, {"session_id": "s", "message": "Do you do WHOLESALE orders?"}).json()

    assert body["handoff"] is True
    with tenant_context(acme):
        assert Conversation.objects.get().handoff_reason == "handoff_keyword"


def test_outside_business_hours_the_bot_says_so_and_still_captures_the_lead(client, acme):
    with tenant_context(acme):
        bot_configuration_update(
            tenant=acme,
            business_hours={"mon": [["00:00", "00:01"]]},
            timezone="Europe/Madrid",
            away_message="We're closed now; we'll call you back.",
        )

    body = post(client, acme.chat_token, {"session_id": "s", "message": "Call me at +44 20 7946 0958"}).json()

    assert body["reply"] == "We're closed now; we'll call you back."
    assert body["lead_captured"] is True
    with tenant_context(acme):
        assert Lead.objects.get().phone == "+442079460958"


def test_greeting_gets_the_configured_greeting(client, acme):
    body = post(client, acme.chat_token, {"session_id": "s", "message": "Hello!"}).json()

    assert (body["intent"], body["reply"]) == ("greeting", "Hi! How can I help you today?")


# --- errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"session_id": "", "message": "hi"}, "session_id"),
        ({"session_id": "x" * 129, "message": "hi"}, "session_id"),
        ({"session_id": "s", "message": ""}, "message"),
        ({"session_id": "s", "message": "x" * 4001}, "message"),
        ({"session_id": "s", "message": "hi", "visitor": {"email": "nope"}}, "visitor"),
    ],
)
def test_invalid_bodies_are_400_and_store_nothing(client, acme, body, field):
    response = post(client, acme.chat_token, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["details"]["fields"])) == ("invalid", [field])
    with tenant_context(acme):
        assert Message.objects.count() == 0


def test_malformed_json_is_400(client, acme):
    response = client.post(
        URL, "{nope", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {acme.chat_token}"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"


@pytest.mark.parametrize(
    "header", ["", "Bearer ", "Bearer ct_unknown", "Token abc", "Bearer 00000000-0000-0000-0000-000000000000"]
)
def test_unknown_or_missing_token_is_401(client, acme, header):
    response = client.post(
        URL, {"session_id": "s", "message": "hi"}, content_type="application/json", HTTP_AUTHORIZATION=header
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_the_papercups_account_id_is_not_a_chat_token(client, acme):
    """The account id is in every Papercups widget and cannot be rotated, so it opens nothing."""
    by_account = post(client, str(acme.papercups_account_id), {"session_id": "s", "message": "hi"})
    by_token = post(client, acme.public_token, {"session_id": "t", "message": "hi"})

    assert (by_account.status_code, by_token.status_code) == (401, 200)


@pytest.mark.parametrize("status", ["canceled", "unpaid"])
def test_inactive_subscription_is_402_and_stores_nothing(client, acme, status):
    Tenant.objects.filter(pk=acme.pk).update(subscription_status=status)

    response = post(client, acme.chat_token, {"session_id": "s", "message": "hi"})

    assert response.status_code == 402
    assert response.json()["error"] == {
        "code": "payment_required",
        "message": "The subscription is not active.",
        "details": {"reason": "subscription_inactive"},
    }
    with tenant_context(acme):
        assert Message.objects.count() == 0


def test_body_too_large_is_413(client, acme, settings):
    settings.API_MAX_BODY_BYTES = 1000

    response = post(client, acme.chat_token, {"session_id": "s", "message": "x" * 2000})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_rate_limit_per_token_is_429_with_retry_after(client, acme, settings):
    settings.CHAT_RATE_PER_TOKEN = "2/m"

    statuses = [post(client, acme.chat_token, {"message": "hi"}).status_code for _ in range(3)]
    other_ip = post(client, acme.chat_token, {"message": "hi"}, REMOTE_ADDR="10.9.9.9")

    assert statuses == [200, 200, 429]
    assert other_ip.status_code == 429
    assert 1 <= int(other_ip["Retry-After"]) <= 60
    assert other_ip.json()["error"]["code"] == "rate_limited"


def test_rate_limit_per_ip_applies_across_tokens(client, acme, globex, settings):
    settings.CHAT_RATE_PER_IP = "2/m"

    a = post(client, acme.chat_token, {"message": "hi"})
    b = post(client, globex.chat_token, {"message": "hi"})
    c = post(client, globex.chat_token, {"message": "hi"})

    assert [a.status_code, b.status_code, c.status_code] == [200, 200, 429]


def test_method_not_allowed_is_json(client, acme):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {acme.chat_token}")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
