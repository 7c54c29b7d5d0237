"""Retrieval quality: what counts in a question, how passages rank, when the bot says it does not know."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from chat.engine import NO_MATCH_REPLIES
from chat.lexical import Term
from chat.models import Conversation, Message
from chat.prompts import HANDOFF_MARKER
from chat.replies import conversation_reply
from chat.retrieval import TIER_SHARES, _coverings, knowledge_search
from chat.services import (
    bot_configuration_update,
    conversation_get_or_create,
    knowledge_article_create,
)

URL = "/api/v1/chat"


def ask(client, tenant, message, session="s1"):
    response = client.post(
        URL,
        {"session_id": session, "message": message},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
    )
    assert response.status_code == 200, response.content
    return response.json()


def add(tenant, title, content):
    with tenant_context(tenant):
        return knowledge_article_create(tenant=tenant, title=title, content=content)


def titles(tenant, query, language="en"):
    with tenant_context(tenant):
        return [p.title for p in knowledge_search(query=query, language=language, limit=4).passages]


@pytest.fixture
def bike_shop(tenant):
    add(tenant, "Store hours", "We are open Tuesday to Saturday from 10 am to 7 pm. We are closed on Mondays.")
    add(tenant, "Bike sales", "We sell city bikes and e-bikes from Gazelle. Every bike gets a free first service.")
    add(
        tenant,
        "Flat tire repair",
        "A flat repair costs $15 plus the tube. Walk-ins are welcome. Tubeless setup costs $35 per wheel.",
    )
    add(
        tenant,
        "About us",
        "What you get when you visit: how we work, what we do and why. Tell us what you need and we help you.",
    )
    return tenant


def test_question_and_stop_words_carry_no_weight(bike_shop):
    with tenant_context(bike_shop):
        result = knowledge_search(query="What can you tell me about how you repair a flat?", language="en", limit=4)

    assert [t.word for t in result.terms] == ["repair", "flat"]
    assert [p.title for p in result.passages] == ["Flat tire repair"]


def test_titles_weigh_more_than_bodies(tenant):
    add(tenant, "Shop", "Besides coffee we also sell gift vouchers and greeting cards.")
    add(tenant, "Gift vouchers", "Buy them at the counter for any amount; they are valid for a year.")

    assert titles(tenant, "gift vouchers") == ["Gift vouchers", "Shop"]


def test_all_terms_rank_above_any_term_even_when_it_repeats(tenant):
    add(
        tenant,
        "Delivery",
        "Delivery on weekdays. Delivery on Saturdays. Delivery in the whole city, delivery at night.",
    )
    add(tenant, "Extras", "The delivery fee is 3 euros.")

    assert titles(tenant, "delivery fee") == ["Extras", "Delivery"]


def test_phrase_proximity_counts(tenant):
    add(tenant, "Bakery", "Our bread is baked daily. Parking is free. Traces of gluten are possible.")
    add(tenant, "Fridays", "On Fridays we bake a gluten free bread with buckwheat.")

    assert titles(tenant, "gluten free bread") == ["Fridays", "Bakery"]


def test_typos_are_repaired_but_real_words_are_not_taken_for_typos(bike_shop):
    assert titles(bike_shop, "tubless setup price")[0] == "Flat tire repair"
    assert titles(bike_shop, "what time do you clsoe")[0] == "Store hours"
    with tenant_context(bike_shop):
        ship = knowledge_search(query="Do you ship to Toronto?", language="en", limit=4)
    assert [sorted(t.lexemes) for t in ship.terms] == [["ship"], ["toronto"]]
    assert ship.passages == []


def test_articles_are_indexed_in_their_own_language(tenant):
    spanish = add(tenant, "Pasteles", "Los pasteles de chocolate cuestan 4 euros y se hacen cada mañana.")

    assert spanish.language == "es"
    assert titles(tenant, "¿Cuánto cuesta un pastel de chocolate?")[0] == "Pasteles"


def test_offline_answer_quotes_the_answering_sentence_only(client, bike_shop):
    body = ask(client, bike_shop, "How much is tubeless setup?")

    assert body["reply"] == "Tubeless setup costs $35 per wheel."
    assert [s["title"] for s in body["sources"]] == ["Flat tire repair"]


def test_below_the_threshold_the_offline_bot_says_it_does_not_know(client, bike_shop, settings):
    settings.CHAT_RELEVANCE_THRESHOLD = 0.4
    # "sell" is in the knowledge base; what the visitor asks about is not.
    body = ask(client, bike_shop, "Do you sell skateboards?")

    assert body["reply"] == NO_MATCH_REPLIES["en"]
    assert body["sources"] == []
    assert "member of our team" in body["reply"]
    assert ask(client, bike_shop, "Do you sell e-bikes?", session="s2")["sources"][0]["title"] == "Bike sales"


def test_below_the_threshold_the_llm_gets_no_passages_and_hands_off(client, bike_shop, fake_openai):
    def model(messages):
        # A model following the prompt: the marker when the passages do not answer.
        system = messages[0]["content"]
        return HANDOFF_MARKER if "Knowledge passages:\n(none)" in system else "We sell e-bikes."

    fake_openai.set_reply(model)

    body = ask(client, bike_shop, "Do you sell skateboards?")

    system = fake_openai.last_messages()[0]["content"]
    assert system.endswith("Knowledge passages:\n(none)")
    assert "the passages do not answer" not in system  # the rule is worded for the model, not quoted
    assert body["handoff"] is True
    assert body["sources"] == []
    with tenant_context(bike_shop):
        assert Conversation.objects.get().handoff_reason == "bot_cannot_answer"


def test_the_prompt_forbids_unmade_promises_and_names_the_reply_language(client, bike_shop, fake_openai):
    ask(client, bike_shop, "¿Venden bicicletas eléctricas?")

    system = fake_openai.last_messages()[0]["content"]
    assert "Never promise anything the business facts or passages do not state" in system
    assert "bookings" in system
    assert "If the business facts and passages do not answer the visitor's question" in system
    assert "Reply in the language the visitor writes in (Spanish" in system

    with tenant_context(bike_shop):
        bot_configuration_update(tenant=bike_shop, reply_language="fixed")
    ask(client, bike_shop, "¿Venden bicicletas eléctricas?", session="s2")
    assert "Always reply in English" in fake_openai.last_messages()[0]["content"]


def test_auto_reply_language_follows_the_visitor_in_the_offline_answer(client, bike_shop):
    assert ask(client, bike_shop, "¿Venden patinetes?")["reply"] == NO_MATCH_REPLIES["es"]

    with tenant_context(bike_shop):
        bot_configuration_update(tenant=bike_shop, reply_language="fixed")
    assert ask(client, bike_shop, "¿Venden patinetes?", session="s2")["reply"] == NO_MATCH_REPLIES["en"]


def test_channel_replies_cite_their_article_when_the_tenant_enables_it(bike_shop):
    with tenant_context(bike_shop):
        conversation, _ = conversation_get_or_create(channel="papercups", external_id="c1")
        Message.objects.create(conversation=conversation, role="visitor", channel="papercups", content="tubless price?")
        plain = conversation_reply(tenant=bike_shop, conversation_id=conversation.pk, deliver=True)

        bot_configuration_update(tenant=bike_shop, cite_sources=True)
        Message.objects.create(conversation=conversation, role="visitor", channel="papercups", content="tubless price?")
        cited = conversation_reply(tenant=bike_shop, conversation_id=conversation.pk, deliver=True)

    assert plain.reply.content == "Tubeless setup costs $35 per wheel."
    assert cited.reply.content == "Tubeless setup costs $35 per wheel.\n\nSource: Flat tire repair"
    assert [s["title"] for s in cited.reply.sources] == ["Flat tire repair"]


def test_the_chat_api_returns_sources_as_data_not_in_the_text(client, bike_shop):
    with tenant_context(bike_shop):
        bot_configuration_update(tenant=bike_shop, cite_sources=True)

    body = ask(client, bike_shop, "tubless price?")

    assert body["reply"] == "Tubeless setup costs $35 per wheel."
    assert [s["title"] for s in body["sources"]] == ["Flat tire repair"]


def test_a_where_question_is_answered_with_the_address(client, tenant):
    add(
        tenant,
        "Location and parking",
        "You will find us at 2140 Coral Way, Miami, above the pharmacy.\n"
        "Parking is free in the garage behind the building.\nThe 24 bus stops right in front of the clinic.",
    )
    add(
        tenant,
        "Horaires et adresse",
        "La boutique est ouverte du mardi au samedi de 10 h à 19 h. Nous sommes fermés le lundi.\n"
        "Vous nous trouverez au 4521 boulevard Saint-Laurent, près du métro.",
    )

    assert ask(client, tenant, "Where is the clinic?")["reply"] == (
        "You will find us at 2140 Coral Way, Miami, above the pharmacy. The 24 bus stops right in front of the clinic."
    )
    assert ask(client, tenant, "Where can I park?", session="s2")["reply"] == (
        "You will find us at 2140 Coral Way, Miami, above the pharmacy. "
        "Parking is free in the garage behind the building."
    )
    assert ask(client, tenant, "Quelle est votre adresse ?", session="s3")["reply"] == (
        "La boutique est ouverte du mardi au samedi de 10 h à 19 h. "
        "Vous nous trouverez au 4521 boulevard Saint-Laurent, près du métro."
    )


def test_a_price_question_needs_a_passage_stating_a_price(client, tenant):
    add(tenant, "Our dentists", "Dr. Marcus Reyes joined in 2018; he does root canals, crowns and implants.")
    add(tenant, "Equipment", "Mats and blocks are provided free of charge.")

    unpriced = ask(client, tenant, "How much does a root canal cost?")
    free = ask(client, tenant, "How much do mats cost?", session="s2")
    add(tenant, "Root canals", "A root canal on a front tooth costs $900, on a molar $1,300.")
    priced = ask(client, tenant, "How much does a root canal cost?", session="s3")

    assert unpriced["reply"] == NO_MATCH_REPLIES["en"]
    assert unpriced["sources"] == []
    assert free["reply"] == "Mats and blocks are provided free of charge."
    assert priced["reply"] == "A root canal on a front tooth costs $900, on a molar $1,300."
    assert [s["title"] for s in priced["sources"]] == ["Root canals"]


def test_a_derived_word_the_stemmer_keeps_apart_counts_as_related(tenant):
    add(tenant, "Pregnancy yoga", "Prenatal yoga runs on Tuesdays; it suits the second trimester of pregnancy.")
    add(tenant, "Schedule", "Yoga classes run every day at 7:00 and 18:00.")

    with tenant_context(tenant):
        result = knowledge_search(query="I'm pregnant, can I still do yoga?", language="en", limit=4)

    assert [(t.word, sorted(t.lexemes)) for t in result.terms] == [("pregnant", ["pregnanc"]), ("yoga", ["yoga"])]
    assert [p.title for p in result.passages] == ["Pregnancy yoga", "Schedule"]
    assert result.passages[0].relevance == 1.0


def test_a_search_is_one_statement_and_sees_knowledge_written_since_the_last_one(tenant):
    add(tenant, "Delivery", "We deliver cakes in Gràcia for 5 euros.")
    with tenant_context(tenant):
        knowledge_search(query="cake delivery", language="en", limit=4)
        with CaptureQueriesContext(connection) as warm:
            assert [p.title for p in knowledge_search(query="cake delivery", language="en", limit=4).passages] == [
                "Delivery"
            ]
        add(tenant, "Cake delivery", "Cake delivery to the whole city costs 12 euros.")
        with CaptureQueriesContext(connection) as changed:
            after = knowledge_search(query="cake delivery", language="en", limit=4)

    assert len(warm.captured_queries) == 1
    # The state read with the candidates differs from the one assumed: the new base's vocabulary is read (2)
    # and the search runs again on it.
    assert len(changed.captured_queries) == 4
    assert [p.title for p in after.passages] == ["Cake delivery", "Delivery"]


def test_passages_holding_every_term_come_from_the_and_query_and_later_tiers_only_fill_in(tenant):
    for i in range(5):
        add(tenant, f"Vegan cakes {i}", f"Our vegan chocolate cake number {i} is baked on Saturdays.")
    for i in range(14):  # the plan allows 20 articles
        add(tenant, f"Other {i}", f"Chocolate bar number {i} of our shop.")
    with tenant_context(tenant):
        every = knowledge_search(query="vegan chocolate cake on saturday", language="en", limit=4)
        plans = _plans(knowledge_search, query="vegan chocolate cake on saturday")
        fallback = knowledge_search(query="chocolate bar for a wedding", language="en", limit=4)

    assert [p.title for p in every.passages] == [f"Vegan cakes {i}" for i in range(4)]
    # Only the AND tier's scan ran; the later tiers' (their one-time filter false) never did.
    scans = [line for line in plans.splitlines() if "Scan on chat_knowledgepassage p_" in line]
    assert len(scans) == 4
    assert "never executed" not in scans[0]
    assert all("never executed" in line for line in scans[1:])
    assert "'vegan' & 'chocol' & 'cake' & 'saturday'" in plans.replace("(", "").replace(")", "").replace("''", "'")
    # No passage holds "wedding": the passages holding the other terms come from a later tier.
    assert [p.title for p in fallback.passages] == ["Other 0", "Other 1", "Other 2", "Other 3"]
    assert len({p.relevance for p in fallback.passages}) == 1
    assert 0 < fallback.passages[0].relevance < 1


def _plans(search, *, query):
    """EXPLAIN ANALYZE of the statement a search sends (its text form)."""
    with CaptureQueriesContext(connection) as captured:
        search(query=query, language="en", limit=4)
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_passage_index_keeps_no_pending_list(tenant):
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'passage_search_gin'::regclass")
        assert cursor.fetchone()[0] == ["fastupdate=off"]


def _search_statements(tenant, *questions):
    """The candidates statements (text, parameters) the searches for `questions` send, and their results."""
    sent: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        if sql.startswith("WITH tier0"):
            sent.append((sql, params))
        return execute(sql, params, many, context)

    with tenant_context(tenant):
        # A one-word search first: this process then knows the knowledge base's state (searches once).
        knowledge_search(query="cake", language="en", limit=4)
        with connection.execute_wrapper(record):
            results = [knowledge_search(query=q, language="en", limit=4) for q in questions]
    return sent, results


def _prepared(sql):
    """(generic, custom) plans of this session's prepared statement with text `sql`; None if not prepared."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = %s", [sql])
        found = cursor.fetchall()
    assert len(found) <= 1
    return found[0] if found else None


def test_a_search_statements_text_depends_only_on_the_schema_and_the_term_and_tier_counts(tenant):
    add(tenant, "Vegan cakes", "Our vegan chocolate cake is baked on Saturdays and delivered on Sundays.")
    sent, _ = _search_statements(
        tenant,
        "vegan chocolate cake baked saturday delivered",
        "chocolate vegan cake sunday baked delivery",
    )

    # Four values per term (6) and one tsquery per tier (4), after the wanted count and the limit.
    assert [len(params) for _, params in sent] == [30, 30]
    assert sent[0][0] == sent[1][0]
    assert sent[0][1] != sent[1][1]
    # Its tables are named with the schema: run under another tenant's search_path it is another statement.
    assert f'"{tenant.schema_name}".chat_knowledgepassage p' in sent[0][0]


def test_a_search_statement_is_prepared_once_and_reused_by_later_searches(tenant):
    add(tenant, "Vegan cakes", "Our vegan chocolate cake is baked on Saturdays and delivered on Sundays.")
    sent, _ = _search_statements(tenant, "vegan chocolate cake baked saturday delivered")
    assert _prepared(sent[0][0]) == (0, 1)  # planned for its values on its first execution (in a transaction)

    _search_statements(
        tenant, "chocolate vegan cake sunday baked delivery", "baked vegan cake chocolate delivery sunday"
    )

    plans = _prepared(sent[0][0])
    assert plans is not None
    assert sum(plans) == 3  # one prepared statement, executed three times


def test_with_prepared_statements_off_the_same_search_executes_unprepared(tenant, settings):
    add(tenant, "Vegan cakes", "Our vegan chocolate cake is baked on Saturdays and delivered on Sundays.")
    add(tenant, "Chocolate", "Chocolate bars of our shop, and a chocolate cake on Sundays.")
    question = "vegan chocolate cake on sunday"
    prepared_sent, prepared = _search_statements(tenant, question)
    executions = sum(_prepared(prepared_sent[0][0]))
    settings.DATABASE_PREPARED_STATEMENTS = False

    unprepared_sent, unprepared = _search_statements(tenant, question)

    assert unprepared_sent == prepared_sent
    assert sum(_prepared(unprepared_sent[0][0])) == executions  # the prepared one did not run
    assert unprepared[0].passages == prepared[0].passages
    assert [p.title for p in prepared[0].passages] == ["Vegan cakes", "Chocolate"]


def test_a_failed_statement_rolled_back_to_its_savepoint_leaves_the_search_statement_prepared(tenant):
    add(tenant, "Vegan cakes", "Our vegan chocolate cake is baked on Saturdays and delivered on Sundays.")
    question = "vegan chocolate cake on sunday"
    sent, before = _search_statements(tenant, question)
    executions = sum(_prepared(sent[0][0]))
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")

    _, after = _search_statements(tenant, question)

    assert after[0].passages == before[0].passages
    assert sum(_prepared(sent[0][0])) == executions + 1


@pytest.mark.parametrize(
    ("weights", "two_thirds", "one_third"),
    [
        # Minimal sets only, by size then in the terms' order.
        ([1.0, 1.0, 1.0], "(a & b) | (a & c) | (b & c)", "(a) | (b) | (c)"),
        # A heavy term reaches two thirds with any other one, a third alone; the light ones need each other.
        ([3.0, 1.0, 1.0], "(a & b) | (a & c)", "(a) | (b & c)"),
        ([1.0, 2.0], "(b)", "(a) | (b)"),
    ],
)
def test_the_middle_tiers_match_the_minimal_sets_of_terms_reaching_their_share(weights, two_thirds, one_third):
    terms = [Term(word=w, lexemes=frozenset({w}), weight=x) for w, x in zip("abc", weights, strict=False)]

    assert _coverings(terms, [t.word for t in terms], TIER_SHARES) == [two_thirds, one_third]
    assert _coverings(terms[:1], ["a"], TIER_SHARES) == ["", ""]
