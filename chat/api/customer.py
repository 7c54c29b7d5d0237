"""The tenant's REST API (API key): knowledge base, bot configuration, conversations and leads.

Paths are resource-style for developers; each method calls one service or selector.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from chat import selectors, services
from chat.analytics import PERIODS, analytics_get
from chat.models import BotConfiguration, Conversation, KnowledgeArticle, Lead, Message
from netia.openapi import error_responses
from netia.serializers import StrictModelSerializer, StrictSerializer
from tenants.api import CustomerApi

ERRORS = error_responses(400, 401, 403, 404)


# --- Knowledge ------------------------------------------------------------------------------------------------------
class ArticleOutput(serializers.ModelSerializer):
    class Meta:
        model = KnowledgeArticle
        fields = ["id", "title", "content", "source_url", "created_at", "updated_at"]


class KnowledgeArticlesApi(CustomerApi):
    """List the knowledge base (GET) or add an article (POST); articles are indexed on write."""

    required_permissions = {"GET": "knowledge:read", "POST": "knowledge:write"}

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "KnowledgeArticleCreateInput"

        title = serializers.CharField(max_length=200)
        content = serializers.CharField(max_length=100_000)
        source_url = serializers.URLField(required=False, allow_blank=True, default="")

    @extend_schema(responses={200: ArticleOutput(many=True), **ERRORS}, operation_id="knowledge_article_list")
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.knowledge_article_list(), ArticleOutput)

    @extend_schema(
        request=InputSerializer, responses={201: ArticleOutput, **ERRORS}, operation_id="knowledge_article_create"
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        article = services.knowledge_article_create(tenant=self.tenant, **data.validated_data)
        return Response(ArticleOutput(article).data, status=201)


class KnowledgeArticleApi(CustomerApi):
    """Read (GET), edit (PATCH) or remove (DELETE) one article."""

    required_permissions = {"GET": "knowledge:read", "PATCH": "knowledge:write", "DELETE": "knowledge:write"}

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "KnowledgeArticleUpdateInput"

        title = serializers.CharField(max_length=200, required=False)
        content = serializers.CharField(max_length=100_000, required=False)
        source_url = serializers.URLField(required=False, allow_blank=True)

    @extend_schema(responses={200: ArticleOutput, **ERRORS}, operation_id="knowledge_article_get")
    def get(self, request: Request, article_id: int) -> Response:
        return Response(ArticleOutput(get_object_or_404(KnowledgeArticle, pk=article_id)).data)

    @extend_schema(
        request=InputSerializer, responses={200: ArticleOutput, **ERRORS}, operation_id="knowledge_article_update"
    )
    def patch(self, request: Request, article_id: int) -> Response:
        article = get_object_or_404(KnowledgeArticle, pk=article_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        article = services.knowledge_article_update(article=article, **data.validated_data)
        return Response(ArticleOutput(article).data)

    @extend_schema(responses={204: None, **ERRORS}, operation_id="knowledge_article_delete")
    def delete(self, request: Request, article_id: int) -> Response:
        services.knowledge_article_delete(article=get_object_or_404(KnowledgeArticle, pk=article_id))
        return Response(status=204)


# --- Bot configuration ------------------------------------------------------------------------------------------------
class BotConfigurationSerializer(StrictModelSerializer):
    class Meta:
        model = BotConfiguration
        exclude = ["id", "knowledge_version"]
        read_only_fields = ["version", "updated_at"]


class BotConfigurationApi(CustomerApi):
    """Read (GET) or change (PATCH) the bot: persona, hours, intents, handoff, LLM settings."""

    required_permissions = {"GET": "bot:read", "PATCH": "bot:write"}

    @extend_schema(responses={200: BotConfigurationSerializer, **ERRORS}, operation_id="bot_configuration_get")
    def get(self, request: Request) -> Response:
        return Response(BotConfigurationSerializer(selectors.bot_configuration_get()).data)

    @extend_schema(
        request=BotConfigurationSerializer,
        responses={200: BotConfigurationSerializer, **ERRORS},
        operation_id="bot_configuration_update",
    )
    def patch(self, request: Request) -> Response:
        data = BotConfigurationSerializer(selectors.bot_configuration_get(), data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        config = services.bot_configuration_update(tenant=self.tenant, **data.validated_data)
        return Response(BotConfigurationSerializer(config).data)


# --- Conversations and leads ---------------------------------------------------------------------------------
class MessageOutput(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")

    class Meta:
        model = Message
        fields = ["id", "role", "kind", "content", "private", "intent", "sources", "delivery_status", "created_at"]


class ConversationOutput(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")

    class Meta:
        model = Conversation
        fields = [
            "id",
            "channel",
            "external_id",
            "session_id",
            "visitor_name",
            "visitor_email",
            "status",
            "handoff_reason",
            "created_at",
            "last_message_at",
            "closed_at",
        ]


class ConversationDetailOutput(ConversationOutput):
    messages = MessageOutput(many=True)

    class Meta(ConversationOutput.Meta):
        fields = [*ConversationOutput.Meta.fields, "messages"]


STATUS_FILTER = OpenApiParameter("status", str, required=False)


class ConversationsApi(CustomerApi):
    """Conversations, most recent first; filter with ?status=bot|human|closed."""

    required_permissions = {"GET": "conversations:read"}

    @extend_schema(
        parameters=[STATUS_FILTER],
        responses={200: ConversationOutput(many=True), **ERRORS},
        operation_id="conversation_list",
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            request, selectors.conversation_list(status=request.query_params.get("status")), ConversationOutput
        )


class ConversationApi(CustomerApi):
    """One conversation with its messages."""

    required_permissions = {"GET": "conversations:read"}

    @extend_schema(responses={200: ConversationDetailOutput, **ERRORS}, operation_id="conversation_get")
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = get_object_or_404(Conversation.objects.prefetch_related("messages"), public_id=conversation_id)
        return Response(ConversationDetailOutput(conversation).data)


class LeadOutput(serializers.ModelSerializer):
    conversation_id = serializers.UUIDField(source="conversation.public_id")

    class Meta:
        model = Lead
        fields = [
            "id",
            "conversation_id",
            "intent",
            "name",
            "email",
            "phone",
            "status",
            "notes",
            "created_at",
            "updated_at",
        ]


class LeadsApi(CustomerApi):
    """Leads, newest first; filter with ?status=new|contacted|won|lost."""

    required_permissions = {"GET": "leads:read"}

    @extend_schema(
        parameters=[STATUS_FILTER], responses={200: LeadOutput(many=True), **ERRORS}, operation_id="lead_list"
    )
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.lead_list(status=request.query_params.get("status")), LeadOutput)


class LeadApi(CustomerApi):
    """Read (GET) or update (PATCH) a lead's pipeline status and notes."""

    required_permissions = {"GET": "leads:read", "PATCH": "leads:write"}

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "LeadUpdateInput"

        status = serializers.ChoiceField(choices=Lead.Status.choices, required=False)
        notes = serializers.CharField(max_length=10_000, required=False, allow_blank=True)

    @extend_schema(responses={200: LeadOutput, **ERRORS}, operation_id="lead_get")
    def get(self, request: Request, lead_id: int) -> Response:
        return Response(LeadOutput(get_object_or_404(selectors.lead_list(), pk=lead_id)).data)

    @extend_schema(request=InputSerializer, responses={200: LeadOutput, **ERRORS}, operation_id="lead_update")
    def patch(self, request: Request, lead_id: int) -> Response:
        lead = get_object_or_404(selectors.lead_list(), pk=lead_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(LeadOutput(services.lead_update(lead=lead, **data.validated_data)).data)


# --- Analytics ----------------------------------------------------------------------------------------------------
class AnalyticsApi(CustomerApi):
    """The figures of the portal's overview for the last 7, 30 or 90 days (`?days=`, default 30).

    Days are the bot's local days. `answered_by_bot_share` and `first_reply_median_seconds` are null when
    there is nothing to measure; `ai_replies_limit` is null when the plan is unlimited.
    """

    required_permissions = {"GET": "conversations:read"}

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CustomerAnalytics"

        class Day(serializers.Serializer):
            day = serializers.DateField()
            count = serializers.IntegerField()

        class Count(serializers.Serializer):
            key = serializers.CharField()
            count = serializers.IntegerField()

        days = serializers.IntegerField()
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        timezone = serializers.CharField()
        conversations = serializers.IntegerField()
        conversations_per_day = Day(many=True)
        answered_by_bot = serializers.IntegerField(help_text="Conversations never handed to a person.")
        answered_by_bot_share = serializers.FloatField(allow_null=True)
        handoffs = serializers.IntegerField()
        handoffs_by_reason = Count(many=True)
        new_leads = serializers.IntegerField()
        top_intents = Count(many=True)
        first_reply_median_seconds = serializers.FloatField(allow_null=True)
        ai_replies_used = serializers.IntegerField(help_text="In the current billing period.")
        ai_replies_limit = serializers.IntegerField(allow_null=True)
        billing_period_end = serializers.DateTimeField()

    @extend_schema(
        parameters=[OpenApiParameter("days", int, required=False, enum=list(PERIODS))],
        responses={200: OutputSerializer, **ERRORS},
        operation_id="analytics_get",
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("days", "30")
        days = int(raw) if raw.isdigit() else 0
        figures = analytics_get(tenant=self.tenant, days=days)
        data = {
            **figures.__dict__,
            "handoffs_by_reason": [{"key": k, "count": n} for k, n in figures.handoffs_by_reason],
            "top_intents": [{"key": k, "count": n} for k, n in figures.top_intents],
        }
        return Response(self.OutputSerializer(data).data)
