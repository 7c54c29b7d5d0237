"""The base of every tenant-facing REST endpoint (`/api/v1/customer/...`), authenticated by API key, and the
tenant's public chat token settings and audit trail."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netia import ratelimits
from netia.openapi import error_responses
from netia.pagination import CURSOR_PARAMETERS, cursor_page, cursor_page_schema
from netia.serializers import StrictSerializer
from tenants.audit import Actor, audit_actor_for_tenant, audit_event_list
from tenants.authentication import ApiKeyAuthentication, HasApiKeyPermission
from tenants.models import ApiKey, AuditEvent, Tenant
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

    @property
    def actor(self) -> Actor:
        """Who acts, for the audit trail: the request's API key."""
        return Actor.api_key(cast(ApiKey, self.request.auth))

    @property
    def client_ip(self) -> str:
        return ratelimits.client_ip("audit", self.request)

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
            actor=self.actor,
            ip=self.client_ip,
            allowed_origins=data.validated_data.get("allowed_origins"),
            turns_per_hour=data.validated_data.get("turns_per_hour"),
        )
        return Response(ChatSettingsOutput(_chat_settings(tenant)).data)


class ChatTokenRotateApi(CustomerApi):
    """Replace the public chat token: the old one stops working at once (put the new one in the website)."""

    required_permissions = {"POST": "bot:write"}

    @extend_schema(request=None, responses={200: ChatSettingsOutput, **ERRORS}, operation_id="chat_token_rotate")
    def post(self, request: Request) -> Response:
        tenant = chat_token_rotate(tenant=self.tenant, actor=self.actor, ip=self.client_ip)
        return Response(ChatSettingsOutput(_chat_settings(tenant)).data)


# --- The tenant's audit trail ---------------------------------------------------------------------------------
class AuditEventOutput(serializers.ModelSerializer):
    """An event of the tenant's own trail: Netia staff appear as "Netia staff", without their address or IP."""

    class Meta:
        model = AuditEvent
        ref_name = "AuditEvent"
        fields = ["id", "action", "actor_kind", "actor", "ip", "details", "created_at"]

    actor = serializers.SerializerMethodField(help_text="Who: a member's email, an API key's name, Netia staff.")
    ip = serializers.SerializerMethodField()

    def get_actor(self, event: AuditEvent) -> str:
        return audit_actor_for_tenant(event)[0]

    def get_ip(self, event: AuditEvent) -> str | None:
        return audit_actor_for_tenant(event)[1]


class AuditFilterSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices, required=False)


AUDIT_LIST_PARAMETERS = [OpenApiParameter("action", str, enum=AuditEvent.Action.values), *CURSOR_PARAMETERS]


def audit_page(view: APIView, *, tenant: Tenant, serializer: type[serializers.Serializer]) -> Response:
    """One cursor page of the tenant's trail, newest first, filtered by the request's `action` (400 if unknown)."""
    filters = AuditFilterSerializer(data=view.request.query_params)
    filters.is_valid(raise_exception=True)
    events = audit_event_list(tenant=tenant, action=filters.validated_data.get("action"))
    return cursor_page(view, events, serializer, ordering="-id")


class AuditEventListApi(CustomerApi):
    """The tenant's audit trail (who changed what, when, from where), newest first, in cursor pages.

    Needs the `audit:read` permission; `action` keeps one kind of event.
    """

    required_permissions = {"GET": ApiKey.Permission.AUDIT_READ}

    @extend_schema(
        parameters=AUDIT_LIST_PARAMETERS,
        responses={200: cursor_page_schema("AuditEventPage", AuditEventOutput), **error_responses(400, 401, 403)},
        operation_id="audit_event_list",
    )
    def get(self, request: Request) -> Response:
        return audit_page(self, tenant=self.tenant, serializer=AuditEventOutput)
