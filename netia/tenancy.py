"""Small typed helpers over django-tenants' connection API."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.db import connection
from django_tenants.utils import get_public_schema_name

if TYPE_CHECKING:
    from django_tenants.postgresql_backend.base import DatabaseWrapper


def tenant_connection() -> DatabaseWrapper:
    """The default connection, typed as django-tenants' schema-aware wrapper."""
    return cast("DatabaseWrapper", connection)


def use_public_schema() -> None:
    """Point the default connection at the public schema (nothing to do when it is there already: every request
    starts and ends with this, and the webhook ack never leaves it)."""
    wrapper = tenant_connection()
    if wrapper.schema_name != get_public_schema_name():
        wrapper.set_schema_to_public()


def current_schema() -> str:
    return tenant_connection().schema_name
