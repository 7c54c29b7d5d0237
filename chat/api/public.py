"""Public chat API: POST /api/v1/chat."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.services import chat_api_turn
from netia import ratelimits
from netia.openapi import error_responses
from tenants.authentication import ChatTokenAuthentication
from tenants.models import Tenant


class ChatMessageCreateApi(APIView):
    """A visitor's message to the tenant's bot; answers synchronously with the bot's reply.

    Authenticate with `Authorization: Bearer <chat token>` (the tenant's public chat token: its Papercups
    account id once connected). `message_id` is the id of the stored visitor message. When a human has
    taken over the conversation, `reply` is null and `handoff` true.
    """

    authentication_classes = [ChatTokenAuthentication]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ChatMessageCreateInput"

        class Visitor(serializers.Serializer):
            name = serializers.CharField(max_length=200, required=False, allow_blank=True)
            email = serializers.EmailField(required=False, allow_blank=True)

        session_id = serializers.CharField(min_length=1, max_length=128)
        message = serializers.CharField(min_length=1, max_length=4000)
        visitor = Visitor(required=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ChatMessageCreateOutput"

        class SourceRef(serializers.Serializer):
            id = serializers.IntegerField()
            title = serializers.CharField()

        conversation_id = serializers.UUIDField()
        message_id = serializers.UUIDField()
        reply = serializers.CharField(allow_null=True)
        intent = serializers.CharField(allow_blank=True)
        handoff = serializers.BooleanField()
        lead_captured = serializers.BooleanField()
        sources = SourceRef(many=True)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Limits apply before authentication, so guessing tokens is throttled too.
        ratelimits.enforce(request, group="chat:ip", key=ratelimits.client_ip, rate=settings.CHAT_RATE_PER_IP)
        ratelimits.enforce(request, group="chat:token", key=ratelimits.bearer_token, rate=settings.CHAT_RATE_PER_TOKEN)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 402, 403, 413, 429)},
        operation_id="chat_message_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        visitor = data.validated_data.get("visitor", {})
        tenant: Tenant = request.auth  # type: ignore[assignment]  # ChatTokenAuthentication
        message, result = chat_api_turn(
            tenant=tenant,
            session_id=data.validated_data["session_id"],
            text=data.validated_data["message"],
            visitor_name=visitor.get("name", ""),
            visitor_email=visitor.get("email", ""),
        )
        output = {
            "conversation_id": result.conversation.public_id,
            "message_id": message.public_id,
            "reply": result.reply.content if result.reply and not result.reply.private else None,
            "intent": result.intent,
            "handoff": result.handoff,
            "lead_captured": result.lead_captured,
            "sources": result.sources,
        }
        return Response(self.OutputSerializer(output).data)
