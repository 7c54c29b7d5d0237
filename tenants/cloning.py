"""Cloning the template schema, with django-tenants' `clone_schema()` SQL function installed once."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django_tenants.clone import CLONE_SCHEMA_FUNCTION, CloneSchema

from netia.tenancy import tenant_connection


class TemplateClone(CloneSchema):
    """django-tenants' CloneSchema, without re-creating its ~4,000-line SQL function on every clone.

    CloneSchema runs `CREATE OR REPLACE FUNCTION clone_schema(...)` before each clone (about a quarter of a
    new tenant's creation time). Here the function is installed only when missing or different from the
    installed django-tenants' text, which is recognised by a digest kept in the function's comment.
    """

    def _create_clone_schema_function(self) -> None:
        source = CLONE_SCHEMA_FUNCTION.format(db_user=settings.DATABASES["default"].get("USER") or "postgres")
        marker = "netia:" + hashlib.sha256(source.encode()).hexdigest()[:16]
        with tenant_connection().cursor() as cursor:
            cursor.execute(
                "SELECT p.oid::regprocedure::text, obj_description(p.oid, 'pg_proc') FROM pg_proc p "
                "WHERE p.proname = 'clone_schema' AND p.pronamespace = 'public'::regnamespace"
            )
            installed = cursor.fetchall()
            if len(installed) == 1 and installed[0][1] == marker:
                return
            cursor.execute(source)
            cursor.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p "
                "WHERE p.proname = 'clone_schema' AND p.pronamespace = 'public'::regnamespace"
            )
            for (signature,) in cursor.fetchall():
                cursor.execute(f"COMMENT ON FUNCTION {signature} IS %s", [marker])
