"""Platform totals for staff: `GET /api/v1/admin/stats`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from netia.openapi import error_responses
from staff.api.base import StaffApi
from staff.selectors import platform_stats_get
from tenants.models import Tenant


class PlatformStatsApi(StaffApi):
    """Tenants by subscription status; conversations, AI replies, handoffs and LLM tokens per UTC day over the
    last `days` days (today included); the handoff rate; failed deliveries; tenants whose Papercups connection
    check fails."""

    required_permissions = {"GET": "tenants.view_tenant"}

    class FilterSerializer(serializers.Serializer):
        days = serializers.IntegerField(required=False, default=14, min_value=1, max_value=90)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffPlatformStats"

        class Tenants(serializers.Serializer):
            class Meta:
                ref_name = "StaffStatsTenants"

            by_status = serializers.DictField(
                child=serializers.IntegerField(), help_text=f"Every status: {', '.join(Tenant.SubscriptionStatus)}."
            )
            suspended = serializers.IntegerField()

        class Day(serializers.Serializer):
            class Meta:
                ref_name = "StaffStatsDay"

            day = serializers.DateField()
            conversations = serializers.IntegerField(help_text="Conversations started.")
            ai_replies = serializers.IntegerField(help_text="Metered bot answers: an LLM answer or an offline quote.")
            handoffs = serializers.IntegerField(help_text="Conversations handed to a human.")
            prompt_tokens = serializers.IntegerField()
            completion_tokens = serializers.IntegerField()

        class FailedDeliveries(serializers.Serializer):
            class Meta:
                ref_name = "StaffStatsFailedDeliveries"

            open = serializers.IntegerField(help_text="Not retried yet (Webhooks, Failed deliveries).")
            since = serializers.IntegerField(help_text="Given up on since the window's start.")

        class FailingConnection(serializers.Serializer):
            class Meta:
                ref_name = "StaffStatsFailingConnection"

            channel = serializers.CharField(help_text="papercups or crisp.")
            tenant_id = serializers.IntegerField()
            name = serializers.CharField()
            problem = serializers.CharField(help_text="The latest check's stable problem code.")
            checked_at = serializers.DateTimeField()

        since = serializers.DateTimeField(help_text="Start of the window (midnight UTC).")
        tenants = Tenants()
        days = Day(many=True)
        conversations = serializers.IntegerField()
        ai_replies = serializers.IntegerField()
        handoffs = serializers.IntegerField()
        handoff_rate = serializers.FloatField(allow_null=True, help_text="Handoffs per conversation; null: none.")
        prompt_tokens = serializers.IntegerField()
        completion_tokens = serializers.IntegerField()
        failed_deliveries = FailedDeliveries()
        failing_connections = FailingConnection(many=True)

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="1 to 90 (14 by default).")],
        responses={200: OutputSerializer, **error_responses(400, 401, 403)},
        operation_id="admin_stats_get",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        stats = platform_stats_get(days=filters.validated_data["days"])
        output = {
            "since": stats.since,
            "tenants": {"by_status": stats.tenants_by_status, "suspended": stats.tenants_suspended},
            "days": stats.days,
            "conversations": stats.conversations,
            "ai_replies": sum(day.ai_replies for day in stats.days),
            "handoffs": stats.handoffs,
            "handoff_rate": stats.handoff_rate,
            "prompt_tokens": sum(day.prompt_tokens for day in stats.days),
            "completion_tokens": sum(day.completion_tokens for day in stats.days),
            "failed_deliveries": {"open": stats.failed_deliveries_open, "since": stats.failed_deliveries_since},
            "failing_connections": stats.failing_connections,
        }
        return Response(self.OutputSerializer(output).data)
