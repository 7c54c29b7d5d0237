"""Knowledge (articles, import, test a question) and the bot's settings, through the portal's forms."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from billing.models import Plan
from chat.models import BotConfiguration, KnowledgeArticle
from chat.selectors import bot_configuration_get


def _articles(tenant) -> list[tuple[str, str]]:
    with tenant_context(tenant):
        return list(KnowledgeArticle.objects.values_list("title", "content"))


def test_articles_are_created_edited_and_deleted(owner_client, client, tenant):
    created = owner_client.post(
        "/portal/knowledge/new", {"title": "Delivery", "content": "We deliver within 5 km for 3 euros."}
    )
    with tenant_context(tenant):
        article = KnowledgeArticle.objects.get()
    answer = client.post(
        "/api/v1/chat",
        {"session_id": "s", "message": "Do you deliver?"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.public_token}"},
    ).json()
    edited = owner_client.post(
        f"/portal/knowledge/{article.pk}", {"title": "Delivery", "content": "We deliver within 8 km."}
    )

    assert (created.status_code, created["Location"]) == (302, "/portal/knowledge")
    assert answer["sources"] == [{"id": article.pk, "title": "Delivery"}]
    assert edited.status_code == 302
    assert _articles(tenant) == [("Delivery", "We deliver within 8 km.")]
    assert owner_client.post(f"/portal/knowledge/{article.pk}/delete").status_code == 302
    assert _articles(tenant) == []


def test_an_invalid_article_is_shown_again_with_the_problem(owner_client, tenant):
    response = owner_client.post("/portal/knowledge/new", {"title": "", "content": "Text"})

    assert response.status_code == 400
    assert response.context["form"].errors == {"title": ["This field is required."]}
    assert _articles(tenant) == []


def test_the_plans_article_limit_is_explained(owner_client, tenant):
    Plan.objects.filter(is_default=True).update(knowledge_articles_max=0)

    response = owner_client.post("/portal/knowledge/new", {"title": "One", "content": "More"})

    assert response.status_code == 402
    assert response.context["form"].non_field_errors() == ["The plan's limit is reached. Upgrade the plan to add more."]
    assert _articles(tenant) == []


def test_files_are_imported_or_every_problem_is_listed(owner_client, tenant):
    bad = SimpleUploadedFile("faq.csv", b"question,answer\nOpen on Sunday?,No.\n,Missing question\n")
    refused = owner_client.post("/portal/knowledge/import", {"documents": [bad]})
    good = [
        SimpleUploadedFile("faq.csv", b"question,answer\nOpen on Sunday?,No.\n"),
        SimpleUploadedFile("parking.md", b"# Parking\nBehind the shop, 30 minutes free.\n"),
    ]
    imported = owner_client.post("/portal/knowledge/import", {"documents": good})

    assert refused.status_code == 400
    assert "faq.csv, row 3: The question is empty." in refused.content.decode()
    assert imported.status_code == 302
    assert sorted(_articles(tenant)) == [("Open on Sunday?", "No."), ("Parking", "Behind the shop, 30 minutes free.")]
    assert [str(m) for m in owner_client.get("/portal/knowledge").context["messages"]] == ["Imported 2 articles."]


def test_testing_a_question_shows_what_retrieval_finds(owner_client, tenant):
    owner_client.post("/portal/knowledge/new", {"title": "Allergens", "content": "All our bread contains gluten."})

    found = owner_client.post("/portal/knowledge/test", {"question": "Is there gluten?"}, HTTP_HX_REQUEST="true")
    nothing = owner_client.post("/portal/knowledge/test", {"question": "Do you sell bikes?"}, HTTP_HX_REQUEST="true")
    full_page = owner_client.post("/portal/knowledge/test", {"question": "gluten"})

    assert "<strong>Allergens</strong>" in found.content.decode()
    assert "<html" not in found.content.decode()
    assert "Nothing in your knowledge matches this question" in nothing.content.decode()
    assert "<strong>Allergens</strong>" in full_page.content.decode()
    assert "<html" in full_page.content.decode()


BOT_FORM = {
    "bot_name": "Bea",
    "persona": "a cheerful baker",
    "tone": "warm",
    "business_facts": "12 Baker Street",
    "greeting": "Hello!",
    "timezone": "Europe/Madrid",
    "away_message": "Closed now.",
    "handoff_keywords": "refund, speak to the manager\nallergy",
    "handoff_message": "Passing you on.",
    "language": "en",
    "reply_language": "auto",
    "cite_sources": "on",
    "llm_model": "gpt-4o-mini",
    "temperature": "0.3",
    "max_tokens": "300",
    "widget_title": "Ask Bea",
    "primary_color": "#aa3300",
    "hours_mon": "09:00-13:00, 15:00-19:30",
    "hours_sat": "9:00-14:00",
    "intent_pricing": "price, cost, how much",
}


def test_the_bot_settings_are_saved_in_the_configurations_shapes(owner_client, member_client, tenant):
    with tenant_context(tenant):
        version = bot_configuration_get().version

    response = member_client.post("/portal/bot", BOT_FORM)

    assert (response.status_code, response["Location"]) == (302, "/portal/bot")
    with tenant_context(tenant):
        config = BotConfiguration.objects.get()
    assert (config.bot_name, config.timezone, config.widget_title, config.temperature) == (
        "Bea",
        "Europe/Madrid",
        "Ask Bea",
        0.3,
    )
    assert (config.reply_language, config.cite_sources) == ("auto", True)
    assert config.business_hours == {"mon": [["09:00", "13:00"], ["15:00", "19:30"]], "sat": [["09:00", "14:00"]]}
    assert config.handoff_keywords == ["refund", "speak to the manager", "allergy"]
    assert config.intent_keywords == {"pricing": ["price", "cost", "how much"]}
    assert config.version == version + 1
    page = owner_client.get("/portal/bot")
    assert page.context["form"].initial["hours_mon"] == "09:00-13:00, 15:00-19:30"


def test_bad_bot_settings_are_shown_beside_their_fields_and_nothing_is_saved(owner_client, tenant):
    with tenant_context(tenant):
        before = bot_configuration_get().version

    bad_hours = owner_client.post("/portal/bot", {**BOT_FORM, "hours_tue": "morning"})
    reversed_hours = owner_client.post("/portal/bot", {**BOT_FORM, "hours_tue": "17:00-09:00"})
    bad_colour = owner_client.post("/portal/bot", {**BOT_FORM, "primary_color": "red"})

    assert bad_hours.status_code == 400
    assert bad_hours.context["form"].errors["hours_tue"] == ["Write hours like 09:00-17:00 (got “morning”)."]
    assert reversed_hours.status_code == 400
    assert "hours_mon" in reversed_hours.context["form"].errors  # the service's business_hours error
    assert bad_colour.context["form"].errors["primary_color"] == ["Use a colour like #1890ff."]
    with tenant_context(tenant):
        assert bot_configuration_get().version == before


def test_the_try_it_panel_talks_to_the_public_chat_api_with_the_tenants_token(owner_client, tenant):
    html = owner_client.get("/portal/bot").content.decode()

    assert 'data-chat-url="/api/v1/chat"' in html
    assert f'data-chat-token="{tenant.chat_token}"' in html
    assert 'data-leads-url="/portal/leads"' in html
    assert '<script src="/static/dashboard/chat.js" defer></script>' in html
