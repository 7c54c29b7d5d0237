"""The Celery app. Tasks run in their tenant's schema (tenant-schemas-celery)."""

from __future__ import annotations

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "netia.settings")

app = CeleryApp("netia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
