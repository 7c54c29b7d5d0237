"""The staff console's site: Netia's own apps first (in INSTALLED_APPS order), then third-party ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


def _own_app_labels() -> list[str]:
    """Labels of the apps that are top-level packages of this repository, in INSTALLED_APPS order."""
    root = Path(settings.BASE_DIR).resolve()
    return [config.label for config in apps.get_app_configs() if Path(config.path).resolve() == root / config.name]


class NetiaAdminSite(admin.AdminSite):
    site_header = "Netia staff console"
    site_title = "Netia"
    index_title = "Staff console"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        """Django's alphabetical list, with Netia's apps moved to the front (tenants, billing, webhooks …)."""
        rank = {label: position for position, label in enumerate(_own_app_labels())}
        return sorted(super().get_app_list(request, app_label), key=lambda app: rank.get(app["app_label"], len(rank)))


class NetiaAdminConfig(AdminConfig):
    """`django.contrib.admin` with `NetiaAdminSite` as `admin.site` (what `@admin.register` uses)."""

    default_site = "netia.admin_site.NetiaAdminSite"
