"""Public chat API: POST /api/v1/chat."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.chat_api import chat_api_turn, conversation_token_issue
from netia import ratelimits
from netia.errors import PermissionDenied
from netia.openapi import error_responses
from netia.serializers import StrictSerializer
from tenants.authentication import ChatTokenAuthentication
from tenants.models import Tenant
from tenants.selectors import tenant_chat_turns_per_hour, tenant_origin_allowed

# Set on the request when the view accepted the browser's Origin (read by `cors_allowed` below).
_CORS_FLAG = "netia_cors_allowed"


class ChatMessageCreateApi(APIView):
    """A visitor's message to the tenant's bot; answers synchronously with the bot's reply.

    Authenticate with `Authorization: Bearer <chat token>` (the tenant's public chat token). The first turn
    creates a conversation (optionally named by a `session_id`) and returns a signed `conversation_token`;
    send it instead of `session_id` to continue (a `session_id` that already has a conversation is 409).
    `message_id` is the id of the stored visitor message. When a human has taken over the conversation,
    `reply` is null and `handoff` true. A browser's `Origin` must be one of the tenant's allowed origins
    when it has set any (403 `origin_not_allowed`).
    """

    authentication_classes = [ChatTokenAuthentication]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ChatMessageCreateInput"

        class Visitor(StrictSerializer):
            name = serializers.CharField(max_length=200, required=False, allow_blank=True)
            email = serializers.EmailField(required=False, allow_blank=True)

        session_id = serializers.CharField(
            min_length=1, max_length=128, required=False, help_text="Names a new conversation (first turn only)."
        )
        conversation_token = serializers.CharField(
            min_length=1, max_length=512, required=False, help_text="From the first turn's answer: continues it."
        )
        message = serializers.CharField(min_length=1, max_length=4000)
        visitor = Visitor(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "session_id" in attrs and "conversation_token" in attrs:
                raise serializers.ValidationError("Send either session_id (new) or conversation_token (continue).")
            return attrs

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ChatMessageCreateOutput"

        class SourceRef(serializers.Serializer):
            id = serializers.IntegerField()
            title = serializers.CharField()

        conversation_id = serializers.UUIDField()
        conversation_token = serializers.CharField(help_text="Send it with the next message of this conversation.")
        message_id = serializers.UUIDField()
        reply = serializers.CharField(allow_null=True)
        intent = serializers.CharField(allow_blank=True)
        handoff = serializers.BooleanField()
        lead_captured = serializers.BooleanField()
        sources = SourceRef(many=True)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Limits apply before authentication, so guessing tokens is throttled too.
        ratelimits.enforce_all(
            request,
            [
                ("chat:ip", ratelimits.client_ip, settings.CHAT_RATE_PER_IP),
                ("chat:token", ratelimits.bearer_token, settings.CHAT_RATE_PER_TOKEN),
            ],
        )
        super().initial(request, *args, **kwargs)
        tenant: Tenant = request.auth  # type: ignore[assignment]  # ChatTokenAuthentication
        origin = request.headers.get("Origin")
        if origin is not None:
            if not tenant_origin_allowed(tenant=tenant, origin=origin):
                raise PermissionDenied(
                    "This website may not use this chat token.", extra={"reason": "origin_not_allowed"}
                )
            setattr(request._request, _CORS_FLAG, True)
        # Whatever the IPs and tokens used, a tenant's anonymous turns are capped per hour.
        ratelimits.enforce(
            request,
            group="chat:tenant",
            key=lambda group, req: str(tenant.pk),
            rate=f"{tenant_chat_turns_per_hour(tenant=tenant)}/h",
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 402, 403, 409, 413, 429)},
        operation_id="chat_message_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        visitor = data.validated_data.get("visitor", {})
        tenant: Tenant = request.auth  # type: ignore[assignment]  # ChatTokenAuthentication
        message, result = chat_api_turn(
            tenant=tenant,
            session_id=data.validated_data.get("session_id", ""),
            conversation_token=data.validated_data.get("conversation_token", ""),
            text=data.validated_data["message"],
            visitor_name=visitor.get("name", ""),
            visitor_email=visitor.get("email", ""),
        )
        # OutputSerializer's shape, built directly (the hot path; tests check the two agree).
        output = {
            "conversation_id": str(result.conversation.public_id),
            "conversation_token": conversation_token_issue(tenant=tenant, conversation=result.conversation),
            "message_id": str(message.public_id),
            "reply": result.reply.content if result.reply and not result.reply.private else None,
            "intent": result.intent,
            "handoff": result.handoff,
            "lead_captured": result.lead_captured,
            "sources": [{"id": int(s["id"]), "title": str(s["title"])} for s in result.sources],
        }
        return Response(output)


def cors_allowed(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    """django-cors-headers' `check_request_enabled` hook: only for the chat API (CORS_URLS_REGEX).

    A preflight carries no credentials, so it is answered for any origin; the real request then gets CORS
    headers only if the view accepted its Origin for the token's tenant (else the view refused it with 403).
    The hook also decides whether CORS applies to a path at all, hence the path check.
    """
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    if request.method == "OPTIONS":
        return True
    return bool(getattr(request, _CORS_FLAG, False))
