"""Cursor pages shared by the APIs whose lists grow while they are read (tenants, audit trails)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# The query parameters of every cursor-paged list, for its OpenAPI description.
CURSOR_PARAMETERS = [
    OpenApiParameter("cursor", str, description="From the `next` or `previous` link."),
    OpenApiParameter("page_size", int, description="1 to 200 (50 by default)."),
]


class CursorPage(CursorPagination):
    """Stable pages whatever is inserted meanwhile: `?cursor=` from `next`/`previous`, `?page_size=` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def cursor_page(
    view: APIView,
    queryset: Any,
    serializer: type[serializers.Serializer],
    *,
    ordering: str,
    context: dict[str, Any] | None = None,
) -> Response:
    """One page of `queryset` in `ordering` (a unique, unchanging field), serialized, with cursor links."""
    request: Request = view.request
    paginator = CursorPage()
    paginator.ordering = ordering
    page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True, context=context or {}).data)


def cursor_page_schema(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    """The OpenAPI shape of a cursor page of `item`."""
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(allow_null=True, help_text="The next page; null on the last."),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )
