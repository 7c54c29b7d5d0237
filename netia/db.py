"""Small database helpers shared by the apps."""

from __future__ import annotations

from django.db import connection, models
from django.db.models.constants import OnConflict
from django.db.models.sql.subqueries import InsertQuery


def insert_unless_conflict(instance: models.Model) -> bool:
    """INSERT the new `instance` unless a unique constraint already holds such a row; whether it was inserted.

    One statement (`INSERT … ON CONFLICT DO NOTHING RETURNING pk`): no error and no savepoint when the row
    exists, so a lost race leaves the caller's transaction usable; get_or_create pays a SELECT, a
    SAVEPOINT and a RELEASE for the same. Sends no signals (like bulk_create).
    """
    model = type(instance)
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [instance])
    ((sql, params),) = query.get_compiler(connection=connection).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {connection.ops.quote_name(str(meta.pk.column))}", params)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True
