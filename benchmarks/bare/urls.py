"""The two baselines: a durable webhook receiver (1 INSERT + 1 LPUSH) and a DRF view validating a chat body."""

from __future__ import annotations

import json
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

TABLE = "bench_bare_event"
QUEUE = "bench:bare"
_redis = redis.Redis.from_url(settings.REDIS_URL)


def durable(request: HttpRequest) -> JsonResponse:
    """What any durable webhook receiver must do: parse the body, store it, queue it."""
    body = request.body
    json.loads(body)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (body) VALUES (%s::jsonb) RETURNING id", [body.decode()])  # noqa: S608
        event_id = cursor.fetchone()[0]
    _redis.lpush(QUEUE, event_id)
    return JsonResponse({"status": "accepted"})


class ChatInput(serializers.Serializer):
    """The body of POST /api/v1/chat, validated the same way."""

    class Visitor(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        email = serializers.EmailField(required=False, allow_blank=True)

    session_id = serializers.CharField(min_length=1, max_length=128)
    message = serializers.CharField(min_length=1, max_length=4000)
    visitor = Visitor(required=False)


class BareChatApi(APIView):
    def post(self, request: Request, **_: Any) -> Response:
        data = ChatInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"ok": True})


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("bare/durable", durable),
    path("bare/chat", BareChatApi.as_view()),
    path("api/v1/health", health),
]
