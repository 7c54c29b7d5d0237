"""The base of every tenant-facing REST endpoint (`/api/v1/customer/...`), authenticated by API key."""

from __future__ import annotations

from typing import Any, cast

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.authentication import ApiKeyAuthentication, HasApiKeyPermission
from tenants.models import ApiKey, Tenant


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
