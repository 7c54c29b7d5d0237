"""Admin pieces shared by every app's staff console."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


def is_set_filter(field: str, *, title: str, set_label: str, unset_label: str) -> type[admin.SimpleListFilter]:
    """A list filter on whether a nullable field (a timestamp like `suspended_at`) is set."""

    class IsSetFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [("set", set_label), ("unset", unset_label)]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            if self.value() in ("set", "unset"):
                return queryset.filter(**{f"{field}__isnull": self.value() == "unset"})
            return queryset

    IsSetFilter.title = title
    return IsSetFilter
