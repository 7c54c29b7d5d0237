"""OpenAPI helpers shared by every app's API: the error shape, documented once."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """{"error": {"code", "message", "details"}}: every 4xx/5xx answer."""

    class Body(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.DictField()

    error = Body()


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """`responses=` entries documenting the error shape for the given statuses."""
    return {status: OpenApiResponse(ErrorSerializer, description="Error") for status in statuses}
