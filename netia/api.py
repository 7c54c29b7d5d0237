"""Operations endpoints: health and Prometheus metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netia.errors import AuthenticationFailed, error_body, read_only_api
from netia.health import health_report


class HealthApi(APIView):
    """GET /api/v1/health: 200 when every component is healthy, 503 naming the failing ones."""

    _component = inline_serializer("HealthComponent", {"status": serializers.CharField()})
    _report = inline_serializer(
        "HealthReport",
        {
            "status": serializers.ChoiceField(choices=["ok", "unhealthy"]),
            "failing": serializers.ListField(child=serializers.CharField()),
            "components": serializers.DictField(child=_component),
        },
    )

    @extend_schema(responses={200: _report, 503: OpenApiResponse(_report, description="A component is down.")})
    def get(self, request: Request) -> Response:
        healthy, report = health_report()
        return Response(report, status=200 if healthy else 503)


@read_only_api
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; requires `Authorization: Bearer <METRICS_TOKEN>`.

    Without a token configured it is open only in local development (DEBUG); in production it answers nobody.
    """
    token = settings.METRICS_TOKEN
    if token or not settings.DEBUG:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token or not hmac.compare_digest(presented.encode(), token.encode()):
            message = AuthenticationFailed.default_message if token else "Set METRICS_TOKEN to read the metrics."
            return JsonResponse(error_body(AuthenticationFailed.code, message), status=401)
    return ExportToDjangoView(request)
