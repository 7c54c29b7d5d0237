"""The base of every tenant-facing REST endpoint (`/api/v1/customer/...`), authenticated by API key, and the
tenant's public chat token settings."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netia.openapi import error_responses
from netia.serializers import StrictSerializer
from tenants.authentication import ApiKeyAuthentication, HasApiKeyPermission
from tenants.models import ApiKey, Tenant
from tenants.selectors import tenant_chat_turns_per_hour
from tenants.services import CHAT_ALLOWED_ORIGINS_MAX, chat_settings_update, chat_token_rotate

ERRORS = error_responses(400, 401, 403)


class CustomerApi(APIView):
    """API-key authentication, in the key's tenant schema; `required_permissions` maps method to permission."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKeyPermission]
    required_permissions: dict[str, str] = {}

    @property
    def tenant(self) -> Tenant:
        """The tenant of the request's API key."""
        return cast(ApiKey, self.request.auth).tenant

    def paginate(self, request: Request, queryset: Any, serializer: type[serializers.Serializer]) -> Response:
        """A limit/offset page of `queryset`, serialized."""
        paginator = LimitOffsetPagination()
        page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer(page, many=True).data)


# --- The public chat token and who may use it --------------------------------------------------------------------
class ChatSettingsOutput(serializers.Serializer):
    class Meta:
        ref_name = "ChatSettings"

    chat_token = serializers.CharField(help_text="Public (it goes in the website); rotate it if it is abused.")
    allowed_origins = serializers.ListField(
        child=serializers.CharField(), help_text="Websites whose browsers may chat; empty: any website."
    )
    turns_per_hour = serializers.IntegerField(help_text="Cap on anonymous chat turns per hour for this tenant.")
    turns_per_hour_max = serializers.IntegerField(help_text="The platform's cap (the most a tenant may set).")


def _chat_settings(tenant: Tenant) -> dict[str, Any]:
    return {
        "chat_token": tenant.chat_token,
        "allowed_origins": tenant.chat_allowed_origins or [],
        "turns_per_hour": tenant_chat_turns_per_hour(tenant=tenant),
        "turns_per_hour_max": settings.CHAT_TENANT_TURNS_PER_HOUR,
    }


class ChatSettingsApi(CustomerApi):
    """The public chat API's settings: read them (GET) or restrict origins / lower the hourly cap (PATCH)."""

    required_permissions = {"GET": "bot:read", "PATCH": "bot:write"}

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ChatSettingsInput"

        allowed_origins = serializers.ListField(
            child=serializers.CharField(max_length=300), required=False, max_length=CHAT_ALLOWED_ORIGINS_MAX
        )
        turns_per_hour = serializers.IntegerField(required=False, min_value=0, help_text="0: the platform's cap.")

    @extend_schema(responses={200: ChatSettingsOutput, **ERRORS}, operation_id="chat_settings_get")
    def get(self, request: Request) -> Response:
        return Response(ChatSettingsOutput(_chat_settings(self.tenant)).data)

    @extend_schema(
        request=InputSerializer, responses={200: ChatSettingsOutput, **ERRORS}, operation_id="chat_settings_update"
    )
    def patch(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = chat_settings_update(
            tenant=self.tenant,
            allowed_origins=data.validated_data.get("allowed_origins"),
            turns_per_hour=data.validated_data.get("turns_per_hour"),
        )
        return Response(ChatSettingsOutput(_chat_settings(tenant)).data)


class ChatTokenRotateApi(CustomerApi):
    """Replace the public chat token: the old one stops working at once (put the new one in the website)."""

    required_permissions = {"POST": "bot:write"}

    @extend_schema(request=None, responses={200: ChatSettingsOutput, **ERRORS}, operation_id="chat_token_rotate")
    def post(self, request: Request) -> Response:
        return Response(ChatSettingsOutput(_chat_settings(chat_token_rotate(tenant=self.tenant))).data)
