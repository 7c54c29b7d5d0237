"""Small database helpers shared by the apps."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db import connection, models
from django.db.models.sql.subqueries import InsertQuery


@lru_cache(maxsize=64)
def _insert_sql(model: type[models.Model], rows: int, *, with_pk: bool, ignore_conflicts: bool) -> tuple[str, tuple]:
    """The INSERT of `rows` plain VALUES rows of `model`, with the fields it lists (built once per shape)."""
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if with_pk or f is not meta.auto_field)
    if any(hasattr(f, "get_placeholder") for f in fields):
        raise TypeError(f"{model.__name__} has a field with its own placeholder: use the ORM")
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Names from the model's metadata, values as parameters.
    columns = ", ".join(quote(str(f.column)) for f in fields)
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)}"  # noqa: S608
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if not with_pk:
        sql += f" RETURNING {quote(str(meta.pk.column))}"
    return sql, fields


def _values(objs: list[models.Model], fields: tuple) -> list[Any]:
    """Each object's column values as the ORM's INSERT prepares them (auto_now and defaults applied)."""
    query = InsertQuery(type(objs[0]))
    query.insert_values(fields, objs)
    compiler = query.get_compiler(connection=connection)
    return [compiler.prepare_value(f, compiler.pre_save_val(f, obj)) for obj in objs for f in fields]


def _saved(instance: models.Model) -> None:
    instance._state.adding = False
    instance._state.db = connection.alias


def insert_unless_conflict(instance: models.Model) -> bool:
    """INSERT the new `instance` unless a unique constraint already holds such a row; whether it was inserted.

    One statement (`INSERT … ON CONFLICT DO NOTHING RETURNING pk`): no error and no savepoint when the row
    exists, so a lost race leaves the caller's transaction usable; get_or_create pays a SELECT, a
    SAVEPOINT and a RELEASE for the same. Sends no signals (like bulk_create).
    """
    return insert_unless_conflict_reserving(instance, ids_of=None, count=0) is not None


def insert_unless_conflict_reserving(
    instance: models.Model, *, ids_of: type[models.Model] | None, count: int
) -> list[int] | None:
    """`insert_unless_conflict`, also taking `count` new ids from `ids_of`'s primary key sequence in the same
    statement, only when the row was inserted: the ids (ascending), or None when it was not."""
    sql, fields = _insert_sql(type(instance), 1, with_pk=False, ignore_conflicts=True)
    params = _values([instance], fields)
    if ids_of is not None and count:
        sequence = "nextval(pg_get_serial_sequence(%s, %s))"
        sql += ", " + ", ".join([sequence] * count)
        params += [ids_of._meta.db_table, str(ids_of._meta.pk.column)] * count
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    instance.pk = row[0]
    _saved(instance)
    return sorted(row[1:])


def insert_with_ids(objs: list[models.Model]) -> None:
    """INSERT new objects of one model whose primary keys are already set, in one statement of plain VALUES rows.

    What `bulk_create` does for them without its per-call query building, and without the UNNEST arrays it
    uses for several rows (cheaper for many rows, dearer for a few). Sends no signals (like bulk_create).
    """
    if any(obj.pk is None for obj in objs):
        raise ValueError("insert_with_ids needs every primary key set")
    sql, fields = _insert_sql(type(objs[0]), len(objs), with_pk=True, ignore_conflicts=False)
    with connection.cursor() as cursor:
        cursor.execute(sql, _values(objs, fields))
    for obj in objs:
        _saved(obj)
