"""The engine's services: retrieval, business hours, configuration, and one answer per visitor turn."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connections
from django_tenants.utils import tenant_context

from chat.engine import is_open
from chat.models import BotConfiguration, Conversation, Message
from chat.replies import conversation_reply
from chat.retrieval import passages_search, split_passages
from chat.services import (
    bot_configuration_update,
    conversation_get_or_create,
    conversation_set_status,
    knowledge_article_create,
    knowledge_article_delete,
    knowledge_article_update,
    message_record_agent,
    message_record_visitor,
)
from netia.errors import ValidationFailed
from tests.probes import TransactionProbe


def test_split_passages_respects_the_target_and_keeps_every_sentence():
    text = "\n\n".join(f"Paragraph {i}. " + " ".join(f"Sentence {i}.{j} is here." for j in range(12)) for i in range(3))

    passages = split_passages(text, target_chars=200)

    assert all(len(p) <= 200 for p in passages)
    assert " ".join(" ".join(passages).split()) == " ".join(text.split())


def test_search_ranks_by_coverage_folds_accents_and_reindexes_on_edit(tenant):
    with tenant_context(tenant):
        cafe = knowledge_article_create(
            tenant=tenant, title="Café menu", content="Our café serves espresso and croissants."
        )
        knowledge_article_create(tenant=tenant, title="Parking", content="Parking is free behind the shop.")
        knowledge_article_create(
            tenant=tenant, title="Croissants", content="Croissants are baked at 6am. Espresso costs 2 euros."
        )

        assert [p.title for p in passages_search(query="cafe", language="en", limit=3)] == ["Café menu"]
        ranked = passages_search(query="espresso croissants price", language="en", limit=3)
        assert [p.title for p in ranked] == ["Croissants", "Café menu"]
        assert passages_search(query="??? !!", language="en", limit=3) == []

        knowledge_article_update(article=cafe, content="Our café now serves matcha.")
        assert [p.title for p in passages_search(query="espresso", language="en", limit=3)] == ["Croissants"]
        knowledge_article_delete(article=cafe)
        assert passages_search(query="matcha", language="en", limit=3) == []


def test_search_is_scoped_to_the_current_tenant(tenant, other_tenant):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Secret", content="Acme's secret recipe uses cardamom.")
    with tenant_context(other_tenant):
        assert passages_search(query="cardamom recipe", language="en", limit=3) == []


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 23, 8, 59, tzinfo=UTC), False),  # Monday 09:59 in Madrid (UTC+1)
        (datetime(2026, 11, 23, 9, 0, tzinfo=UTC), True),
        (datetime(2026, 11, 23, 16, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 23, 17, 0, tzinfo=UTC), False),
        (datetime(2026, 11, 22, 12, 0, tzinfo=UTC), False),  # Sunday
    ],
)
def test_business_hours_in_the_tenants_time_zone(now, expected):
    config = BotConfiguration(timezone="Europe/Madrid", business_hours={"mon": [["10:00", "18:00"]]})

    assert is_open(config=config, now=now) is expected


def test_no_business_hours_means_always_open():
    assert is_open(config=BotConfiguration(), now=datetime(2026, 11, 22, 3, 0, tzinfo=UTC)) is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"business_hours": {"monday": [["09:00", "17:00"]]}}, "business_hours"),
        ({"business_hours": {"mon": [["17:00", "09:00"]]}}, "business_hours"),
        ({"intent_keywords": {"pricing": "price"}}, "intent_keywords"),
        ({"intent_keywords": {"other": ["x"]}}, "intent_keywords"),
        ({"handoff_keywords": "human"}, "handoff_keywords"),
        ({"temperature": 3}, "temperature"),
        ({"primary_color": "blue"}, "primary_color"),
    ],
)
def test_invalid_configuration_is_rejected_and_nothing_changes(tenant, changes, field):
    with tenant_context(tenant):
        before = bot_configuration_update(tenant=tenant, bot_name="Ada")

        with pytest.raises(ValidationFailed) as excinfo:
            bot_configuration_update(tenant=tenant, **changes)

        assert list(excinfo.value.extra["fields"]) == [field]
        after = BotConfiguration.objects.get()
        assert (after.version, after.timezone, after.business_hours) == (before.version, "UTC", {})


def test_unknown_configuration_fields_are_rejected(tenant):
    with tenant_context(tenant), pytest.raises(ValidationFailed) as excinfo:
        bot_configuration_update(tenant=tenant, colour="red")
    assert excinfo.value.extra == {"unknown": ["colour"]}


def test_tenant_edited_intent_keywords_take_effect(tenant):
    with tenant_context(tenant):
        bot_configuration_update(tenant=tenant, intent_keywords={"booking": ["reserve a lane"]})
        conversation, _ = conversation_get_or_create(channel="api", session_id="s")
        message_record_visitor(conversation=conversation, content="Can I reserve a lane?")

        result = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=False)

    assert result.intent == "booking"
    assert result.lead is not None


def test_a_burst_gets_one_answer_and_a_second_run_finds_nothing(tenant):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Delivery", content="We deliver within 5 km for 3 euros.")
        conversation, _ = conversation_get_or_create(channel="papercups", external_id="conv-1")
        for i, text in enumerate(["hi", "do you deliver?", "and how much?"]):
            message_record_visitor(conversation=conversation, content=text, external_id=f"m{i}")

        first = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)
        second = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)

        assert second is None
        assert first.reply.content == "We deliver within 5 km for 3 euros."
        assert first.reply.delivery_status == Message.Delivery.PENDING
        assert set(Message.objects.filter(role="visitor").values_list("answered_by", flat=True)) == {first.reply.pk}
        assert Message.objects.filter(role="bot").count() == 1


def test_duplicate_channel_messages_are_stored_once(tenant):
    with tenant_context(tenant):
        conversation, created = conversation_get_or_create(channel="papercups", external_id="conv-1")
        again, created_again = conversation_get_or_create(channel="papercups", external_id="conv-1")
        first, new = message_record_visitor(conversation=conversation, content="hi", external_id="m1")
        duplicate, new_again = message_record_visitor(conversation=conversation, content="hi", external_id="m1")

        assert (created, created_again, new, new_again) == (True, False, True, False)
        assert (again.pk, duplicate.pk) == (conversation.pk, first.pk)
        assert Message.objects.count() == 1


def test_an_agents_public_reply_silences_the_bot_but_a_private_note_does_not(tenant):
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="papercups", external_id="conv-1")
        message_record_agent(conversation=conversation, content="internal", external_id="n1", private=True)
        conversation.refresh_from_db()
        assert conversation.status == Conversation.Status.BOT

        message_record_agent(conversation=conversation, content="Hi, I'm Sam", external_id="a1")
        message_record_visitor(conversation=conversation, content="thanks Sam", external_id="v1")

        conversation.refresh_from_db()
        assert (conversation.status, conversation.handoff_reason) == ("human", "agent_replied")
        assert conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True) is None


def test_complaint_hands_off_with_a_private_note_for_agents(tenant):
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="papercups", external_id="conv-1")
        message_record_visitor(
            conversation=conversation, content="This is unacceptable, my order arrived broken!", external_id="m1"
        )

        result = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)

        assert (result.handoff, result.handoff_reason) == (True, "complaint")
        assert result.reply.kind == Message.Kind.HANDOFF_NOTICE
        assert result.note.private is True
        assert result.note.content.startswith("Netia handed this conversation to your team (reason: complaint).")
        assert "my order arrived broken" in result.note.content


def test_a_closed_conversation_reopens_when_the_visitor_writes_again(tenant):
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="api", session_id="s")
        Conversation.objects.filter(pk=conversation.pk).update(status="closed")
        conversation.refresh_from_db()

        message_record_visitor(conversation=conversation, content="hello again")

        assert (conversation.status, conversation.closed_at) == ("bot", None)


def test_messages_written_while_a_human_had_the_chat_are_not_answered_after_reopening(tenant):
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="papercups", external_id="conv-1")
        message_record_agent(conversation=conversation, content="Sam here", external_id="a1")
        message_record_visitor(conversation=conversation, content="thanks Sam, one more thing", external_id="v1")
        conversation_set_status(conversation=conversation, status=Conversation.Status.CLOSED)

        message_record_visitor(conversation=conversation, content="Hello again, do you deliver?", external_id="v2")
        result = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)

        assert [m.external_id for m in result.visitor_messages] == ["v2"]
        assert Message.objects.get(external_id="v1").answered_by is None


# --- No transaction open while the LLM answers --------------------------------------------------------------
def test_the_chat_api_asks_the_llm_with_no_transaction_open(client, tenant, fake_openai):
    with tenant_context(tenant):
        knowledge_article_create(tenant=tenant, title="Shipping", content="We ship to Canada in 3 days.")
    probe = TransactionProbe()

    def answer(messages):
        probe("llm")
        return "We ship to Canada in 3 days."

    fake_openai.set_reply(answer)

    response = client.post(
        "/api/v1/chat",
        {"session_id": "s1", "message": "Do you ship to Canada?"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
    )

    assert (response.status_code, response.json()["reply"]) == (200, "We ship to Canada in 3 days.")
    assert probe.seen == [("llm", 0)]


def test_a_channel_turn_asks_the_llm_with_no_transaction_open(tenant, fake_openai):
    probe = TransactionProbe()

    def answer(messages):
        probe("llm")
        return "Hello!"

    fake_openai.set_reply(answer)
    with tenant_context(tenant):
        conversation, _ = conversation_get_or_create(channel="papercups", external_id="c-1")
        message_record_visitor(conversation=conversation, content="Do you ship to Canada?", external_id="m-1")

        result = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)

    assert (result.reply.content, result.reply.delivery_status) == ("Hello!", "pending")
    assert probe.seen == [("llm", 0)]


def test_a_human_taking_over_while_the_llm_was_thinking_gets_no_bot_answer(tenant, fake_openai):
    shared = connections["default"]  # the fake's thread writes on this test's connection (its data is uncommitted)
    shared.inc_thread_sharing()
    try:
        with tenant_context(tenant):
            conversation, _ = conversation_get_or_create(channel="papercups", external_id="c-1")
            question, _ = message_record_visitor(
                conversation=conversation, content="Do you ship to Canada?", external_id="m-1"
            )

            def agent_takes_over(messages):
                with shared.cursor() as cursor:
                    cursor.execute("UPDATE chat_conversation SET status = 'human' WHERE id = %s", [conversation.pk])
                return "Yes, we do."

            fake_openai.set_reply(agent_takes_over)
            result = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)

            question.refresh_from_db()
            assert (result, question.answered_by) == (None, None)
            assert Message.objects.filter(role="bot").count() == 0
            assert len(fake_openai.completion_requests()) == 1
    finally:
        shared.dec_thread_sharing()


def test_a_turn_answered_by_another_worker_while_the_llm_was_thinking_is_not_answered_twice(tenant, fake_openai):
    shared = connections["default"]  # the fake's thread writes on this test's connection (its data is uncommitted)
    shared.inc_thread_sharing()
    try:
        with tenant_context(tenant):
            conversation, _ = conversation_get_or_create(channel="papercups", external_id="c-1")
            question, _ = message_record_visitor(
                conversation=conversation, content="Do you ship to Canada?", external_id="m-1"
            )

            # Another worker's reply, committed while this turn's LLM call is in flight.
            other = Message.objects.create(
                conversation=conversation, channel="papercups", role="bot", content="Yes, we do."
            )

            def another_worker_answers(messages):
                with shared.cursor() as cursor:
                    cursor.execute("UPDATE chat_message SET answered_by_id = %s WHERE id = %s", [other.pk, question.pk])
                return "Yes, we ship to Canada."

            fake_openai.set_reply(another_worker_answers)
            result = conversation_reply(tenant=tenant, conversation_id=conversation.pk, deliver=True)

            question.refresh_from_db()
            bots = list(Message.objects.filter(role="bot").values_list("content", flat=True))
            assert result is None
            assert bots == ["Yes, we do."]  # the other worker's answer only: this one was withdrawn
            assert question.answered_by.content == "Yes, we do."
    finally:
        shared.dec_thread_sharing()
