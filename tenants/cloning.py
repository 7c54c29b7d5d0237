"""Creating a tenant's schema as a structural copy of the migrated template schema.

django-tenants' `clone_schema()` SQL function works, but its catalog queries grow with the whole database:
measured here 0.19 s per clone with 20 tenants and 1.4 s with 560. This copy reads only the template's
own catalog entries (by namespace), so its cost does not grow with the number of tenants:

- each table is created `LIKE` the template's (columns, defaults, identity columns with their own new
  sequences, storage, comments);
- primary keys, unique, check and exclusion constraints, then foreign keys, are added under their original
  names from `pg_get_constraintdef`; other indexes (Django's named and partial indexes, GIN) from
  `pg_get_indexdef`: names are kept, so later migrations that alter them by name work on every tenant;
- rows are copied (the template holds only its `django_migrations` records) and identity sequences moved
  past them.

A template holding anything else (views, functions, free-standing sequences, types) is not copied here:
`schema_clone_from_template` returns False and the caller falls back to django-tenants' function.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from netia.tenancy import tenant_connection

# Catalog object kinds this copy handles: ordinary tables, their indexes, their identity sequences, TOAST.
_SUPPORTED_RELKINDS = {"r", "i", "S", "t"}


def _quote(*names: str) -> str:
    """A (schema-)qualified SQL identifier, quoted (so f-string SQL built from these is not injectable)."""
    return sql.Identifier(*names).as_string()


def _unsupported(cursor: Any, base: str) -> bool:
    """Whether the template holds objects this copy does not handle (views, functions, free sequences...)."""
    cursor.execute(
        "SELECT c.relkind, c.relkind = 'S' AND NOT EXISTS"
        "  (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('i', 'a'))"
        " FROM pg_class c WHERE c.relnamespace = %s::regnamespace",
        [base],
    )
    if any(kind not in _SUPPORTED_RELKINDS or free_sequence for kind, free_sequence in cursor.fetchall()):
        return True
    cursor.execute(
        "SELECT (SELECT count(*) FROM pg_proc WHERE pronamespace = %(ns)s::regnamespace)"
        " + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = %(ns)s::regnamespace"
        "    AND t.typtype IN ('d', 'e', 'r', 'm', 'c') AND NOT EXISTS"
        "      (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'r'))",
        {"ns": base},
    )
    return bool(cursor.fetchone()[0])


def schema_clone_from_template(*, base: str, new: str) -> bool:
    """Create schema `new` as a copy of `base`; False (nothing created) when `base` holds unsupported objects."""
    with tenant_connection().cursor() as cursor:
        if _unsupported(cursor, base):
            return False
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind = 'r' ORDER BY relname",
            [base],
        )
        tables = [name for (name,) in cursor.fetchall()]

        cursor.execute(f"CREATE SCHEMA {_quote(new)}")
        for table in tables:
            cursor.execute(
                f"CREATE TABLE {_quote(new, table)} (LIKE {_quote(base, table)} INCLUDING DEFAULTS"
                " INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)"
            )

        def requalify(definition: str) -> str:
            # Catalog definitions name the template's tables schema-qualified (it is not on the search path).
            return definition.replace(f"{_quote(base)}.", f"{_quote(new)}.").replace(f"{base}.", f"{_quote(new)}.")

        cursor.execute(
            "SELECT cl.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " JOIN pg_class cl ON cl.oid = c.conrelid"
            " WHERE c.connamespace = %s::regnamespace AND c.contype IN ('p', 'u', 'c', 'x', 'f')"
            " ORDER BY c.contype = 'f', cl.relname, c.conname",
            [base],
        )
        for table, name, definition in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {_quote(new, table)} ADD CONSTRAINT {_quote(name)} {requalify(definition)}")

        cursor.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relnamespace = %s::regnamespace"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
            " ORDER BY c.relname",
            [base],
        )
        for (definition,) in cursor.fetchall():
            cursor.execute(requalify(definition))

        for table in tables:
            cursor.execute(
                f"INSERT INTO {_quote(new, table)} OVERRIDING SYSTEM VALUE SELECT * FROM {_quote(base, table)}"  # noqa: S608
            )
            if cursor.rowcount:
                _identities_past_rows(cursor, relation=_quote(new, table))
    return True


def _identities_past_rows(cursor: Any, *, relation: str) -> None:
    """Move the table's identity sequences past the ids of the copied rows."""
    cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attidentity <> ''", [relation])
    for (column,) in cursor.fetchall():
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, %s), max({_quote(column)})) FROM {relation}",  # noqa: S608
            [relation, column],
        )
