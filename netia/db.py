"""Small database helpers shared by the apps."""

from __future__ import annotations

import datetime
import enum
import itertools
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models, router
from django.db.models.base import ModelState
from django.db.models.fields import Field, return_None  # type: ignore[attr-defined]
from django.db.models.signals import post_init, pre_init
from django.db.models.sql.subqueries import InsertQuery
from django_tenants.utils import get_public_schema_name
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int2, Int4, Int8

from netia.prepared import prepared_rows

_INTEGERS = (int, Int2, Int4, Int8)

# How `_values` prepares a field's value without the ORM's calls, when the value is of the kind named (else the
# ORM's own `pre_save` + `get_db_prep_save` prepare it, as for every field of a class not listed):
_ORM = 0  # always the ORM's way
_STR = 1  # a str (or a str subclass such as a TextChoices member): itself
_BOOL = 2  # a bool: itself
_INT = 3  # an int (exactly): itself, or what `convert` makes of it (PostgreSQL's typed integer wrappers)
_UUID = 4  # a UUID: itself
_DATETIME = 5  # an aware datetime: itself
_JSON = 6  # a dict or a list: what `convert` makes of it (the backend's JSON adapter)

# Exact field classes (never subclasses, which may prepare values their own way) and how their values go.
_KINDS: dict[type[Field], int] = {
    models.CharField: _STR,
    models.TextField: _STR,
    models.EmailField: _STR,
    models.SlugField: _STR,
    models.URLField: _STR,
    models.BooleanField: _BOOL,
    models.IntegerField: _INT,
    models.BigIntegerField: _INT,
    models.SmallIntegerField: _INT,
    models.PositiveIntegerField: _INT,
    models.PositiveBigIntegerField: _INT,
    models.PositiveSmallIntegerField: _INT,
    models.AutoField: _INT,
    models.BigAutoField: _INT,
    models.SmallAutoField: _INT,
    models.UUIDField: _UUID,
    models.DateTimeField: _DATETIME,
    models.JSONField: _JSON,
}

# A field's plan: (field, attname, whether its own pre_save runs, kind, convert or None).
_FieldPlan = tuple[Field, str, bool, int, Callable[[Any], Any] | None]


def _field_plan(field: Field) -> _FieldPlan:
    """How `_values` prepares `field`'s value (see _KINDS); a relation goes as the field it points to."""
    target = field
    if type(field) in (models.ForeignKey, models.OneToOneField):
        target = field.target_field  # type: ignore[attr-defined]
    kind = _KINDS.get(type(target), _ORM)
    convert: Callable[[Any], Any] | None = None
    if kind == _INT and not isinstance(target, models.AutoField | models.BigAutoField | models.SmallAutoField):
        # IntegerField.get_db_prep_value wraps the int in the backend's type for its size (Int4, Int8 …).
        def convert(value: Any, internal_type: str = target.get_internal_type()) -> Any:
            return connection.ops.adapt_integerfield_value(value, internal_type)

    elif kind == _JSON:

        def convert(value: Any, encoder: Any = target.encoder) -> Any:  # type: ignore[attr-defined]
            return connection.ops.adapt_json_value(value, encoder)

    if target is not field and kind == _JSON:
        kind = _ORM
    # pre_save of these classes only reads the attribute (auto_now and auto_now_add fields set it first).
    reads_attribute = type(field).pre_save is Field.pre_save or (
        type(field) is models.DateTimeField and not field.auto_now and not field.auto_now_add
    )
    return field, str(field.attname), not reads_attribute, kind, convert


# Plans by the identity of their fields' tuple (`_columns` hands out the same one every time): an lru_cache
# would hash every field of the tuple (Field.__hash__, in Python) on every call.
_PLANS: dict[int, tuple[tuple[Field, ...], tuple[_FieldPlan, ...]]] = {}


def _plan(fields: tuple[Field, ...]) -> tuple[_FieldPlan, ...]:
    found = _PLANS.get(id(fields))
    if found is not None and found[0] is fields:
        return found[1]
    if len(_PLANS) >= 256:
        _PLANS.clear()
    plan = tuple(_field_plan(f) for f in fields)
    _PLANS[id(fields)] = (fields, plan)  # the tuple is kept: its id is not reused while it is here
    return plan


@lru_cache(maxsize=64)
def _columns(model: type[models.Model], *, with_pk: bool) -> tuple[str, tuple[Field, ...]]:
    """The columns an INSERT of `model` lists, and their fields."""
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if with_pk or f is not meta.auto_field)
    if any(hasattr(f, "get_placeholder") for f in fields):
        raise TypeError(f"{model.__name__} has a field with its own placeholder: use the ORM")
    # Names from the model's metadata, values as parameters.
    return ", ".join(connection.ops.quote_name(str(f.column)) for f in fields), fields


@lru_cache(maxsize=64)
def _insert_sql(
    model: type[models.Model], *, with_pk: bool, ignore_conflicts: bool
) -> tuple[str, str, tuple[Field, ...]]:
    """The INSERT of `model`'s VALUES rows up to the rows, what follows them, and the fields a row lists."""
    meta = model._meta
    columns, fields = _columns(model, with_pk=with_pk)
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "  # noqa: S608
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if not with_pk:
        tail += f" RETURNING {quote(str(meta.pk.column))}"
    return head, tail, fields


def _values(objs: list[models.Model], fields: tuple[Field, ...]) -> list[list[Any]]:
    """Each object's column values as the ORM's INSERT prepares them (auto_now and defaults applied).

    The ORM's `pre_save` and `get_db_prep_save` run only where they can change the value (see _KINDS); the
    rest is the attribute itself. tests/test_db.py holds every field of every model to the ORM's values.
    """
    plan = _plan(fields)
    compiler = None
    rows = []
    for obj in objs:
        row = []
        for field, attname, own_pre_save, kind, convert in plan:
            value = field.pre_save(obj, True) if own_pre_save else getattr(obj, attname)
            if value is None and kind != _ORM:
                pass  # every listed class prepares None as None
            elif (
                (kind == _STR and isinstance(value, str))
                or (kind == _DATETIME and isinstance(value, datetime.datetime) and value.utcoffset() is not None)
                or (kind == _INT and type(value) is int)
                or (kind == _BOOL and type(value) is bool)
                or (kind == _UUID and isinstance(value, uuid.UUID))
            ):
                if convert is not None:
                    value = convert(value)
            elif kind == _JSON and type(value) in (dict, list):
                value = convert(value)  # type: ignore[misc]
            else:
                if compiler is None:
                    compiler = InsertQuery(type(obj)).get_compiler(connection=connection)
                value = compiler.prepare_value(field, value)
            row.append(value)
        rows.append(row)
    return rows


# A choice's value written out only when it is this plain (never a quote or a backslash to escape).
_PLAIN = re.compile(r"[\w .:/-]*", re.ASCII)
_EMPTY_JSON: dict[type, str] = {list: "'[]'::jsonb", dict: "'{}'::jsonb"}


def _literal(value: Any) -> str:
    """The SQL client-side binding sends for `value`, when it is a constant of our code or needs no quoting (NULL,
    a boolean, '', a non-negative integer, a choice's value, an empty JSON list or object, a UUID, an aware
    datetime); else ""."""
    if value is None:
        return "NULL"
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is str:
        return "" if value else "''"
    if kind in _INTEGERS:
        return str(int(value)) if value >= 0 else ""
    if kind is uuid.UUID:
        return f"'{value.hex}'::uuid"
    if kind is datetime.datetime:
        return f"'{value}'::timestamptz" if value.utcoffset() is not None else ""
    if kind is Jsonb:
        obj = value.obj
        return _EMPTY_JSON.get(type(obj), "") if not obj else ""
    if isinstance(value, enum.Enum) and isinstance(value, str) and _PLAIN.fullmatch(value):
        return f"'{str.__str__(value)}'"
    return ""


def _statement(head: str, rows: list[list[Any]], tail: str) -> tuple[str, list[Any]]:
    """The INSERT with its VALUES rows: the values `_literal` writes out as such, every other one a parameter.

    Client-side binding sends those values as exactly these literals anyway (tests/test_db.py compares them
    with psycopg's), so the server gets the same statement; psycopg has far fewer values to adapt and quote
    (a chat turn's first write had 29 parameters, now its texts), and the query stays under psycopg's
    MAX_CACHED_STATEMENT_PARAMS (50), past which it re-parses a query's text on every execution.
    """
    params = []
    placeholders = []
    for row in rows:
        row_sql = []
        for value in row:
            literal = _literal(value)
            if not literal:
                literal = "%s"
                params.append(value)
            row_sql.append(literal)
        placeholders.append("(" + ", ".join(row_sql) + ")")
    return head + ", ".join(placeholders) + tail, params


M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class _Construction:
    """How `unsaved` builds a model's object: its fields' constant defaults, the makers of the others' (called
    per object, as the ORM does), its attnames and its foreign keys by name."""

    constants: dict[str, Any]
    makers: tuple[tuple[str, Callable[[], Any]], ...]
    attnames: frozenset[str]
    foreign_keys: dict[str, Any]


@lru_cache(maxsize=64)
def _construction(model: type[models.Model]) -> _Construction:
    constants: dict[str, Any] = {}
    makers = []
    for field in model._meta.concrete_fields:
        if getattr(field, "generated", False):
            continue
        make = field._get_default  # type: ignore[attr-defined] # what Model.__init__'s get_default() calls
        if make is return_None or make is str or (field.has_default() and not callable(field.default)):
            constants[field.attname] = make()  # the ORM hands out this same value (or object) every time
        else:
            makers.append((field.attname, make))
    foreign_keys = {f.name: f for f in model._meta.concrete_fields if type(f) is models.ForeignKey}
    return _Construction(constants, tuple(makers), frozenset(constants) | {a for a, _ in makers}, foreign_keys)


def unsaved(model: type[M], /, **values: Any) -> M:
    """`model(**values)`: an unsaved object with the same attributes and cached related objects, built without
    Model.__init__'s per-field work. `values` by attname, or a foreign key's related object (or None) by its
    field's name; nothing else (no properties). A model with an __init__ of its own, or pre_init or post_init
    receivers, is built by its __init__. tests/test_db.py holds it to `model(**values)`.
    """
    if model.__init__ is not models.Model.__init__ or pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model(**values)
    plan = _construction(model)
    data = plan.constants.copy()
    for attname, make in plan.makers:
        if attname not in values:
            data[attname] = make()
    related = []
    for name, value in values.items():
        if name in plan.attnames:
            data[name] = value
            continue
        field = plan.foreign_keys.get(name)
        if field is None:
            raise TypeError(f"{model.__name__}() got an unexpected keyword argument {name!r}")
        if value is not None and not isinstance(value, field.remote_field.model._meta.concrete_model):
            raise ValueError(f"{model.__name__}.{name} must be a {field.remote_field.model.__name__} instance")
        data[field.attname] = None if value is None else getattr(value, field.target_field.attname)
        related.append((field, value))
    instance = model.__new__(model)
    instance._state = ModelState()
    instance.__dict__.update(data)
    for field, value in related:
        if value is not None:  # as the relation's descriptor does on assignment
            if instance._state.db is None:
                instance._state.db = router.db_for_write(model, instance=value)
            if value._state.db is None:
                value._state.db = router.db_for_write(type(value), instance=instance)
            if not router.allow_relation(value, instance):
                raise ValueError(f"the database router prevents relating {value!r} to a {model.__name__}")
        field.set_cached_value(instance, value)
    return instance


def _saved(instance: models.Model) -> None:
    instance._state.adding = False
    instance._state.db = connection.alias


def insert_unless_conflict(instance: models.Model) -> bool:
    """INSERT the new `instance` unless a unique constraint already holds such a row; whether it was inserted.

    One statement (`INSERT … ON CONFLICT DO NOTHING RETURNING pk`): no error and no savepoint when the row
    exists, so a lost race leaves the caller's transaction usable; get_or_create pays a SELECT, a
    SAVEPOINT and a RELEASE for the same. Sends no signals (like bulk_create).
    """
    head, tail, fields = _insert_sql(type(instance), with_pk=False, ignore_conflicts=True)
    sql, params = _statement(head, _values([instance], fields), tail)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    _saved(instance)
    return True


def _name_literal(name: str) -> str:
    """A table or column name of our models as an SQL string literal (they never hold a quote)."""
    if "'" in name or "\\" in name:
        raise ValueError(f"unexpected name {name!r}")
    return f"'{name}'"


@lru_cache(maxsize=256)
def _tenant_app(model: type[models.Model]) -> bool:
    return model._meta.app_config.name in settings.TENANT_APPS


def _table(model: type[models.Model], schema: str) -> str:
    """The model's table named with its schema: `schema` (the connection's) for a tenant app's model, else
    public."""
    quote = connection.ops.quote_name
    return f"{quote(schema if _tenant_app(model) else get_public_schema_name())}.{quote(model._meta.db_table)}"


def _constant(value: Any) -> str:
    """`_literal(value)` for a value that stays the same from one statement to the next of the same shape (NULL,
    a boolean, '', an empty JSON list or object, a choice's value); else "" (a parameter: UUIDs, times, numbers
    and texts change from one row to the next)."""
    kind = type(value)
    if kind is uuid.UUID or kind is datetime.datetime or kind in _INTEGERS:
        return ""
    return _literal(value)


_POSITIONAL = re.compile(r"%s")


def _numbered(sql: str, params: list[Any], values: Sequence[Any]) -> str:
    """`sql` with its %s placeholders numbered ($n) after `params`, to which `values` are added."""
    if sql.count("%") != sql.count("%s"):
        raise ValueError("a statement of `then` may hold no % but its %s placeholders")
    count = itertools.count()
    numbered = _POSITIONAL.sub(lambda _: f"${len(params) + 1 + next(count)}", sql)
    if next(count) != len(values):
        raise ValueError("a statement of `then` has not one %s per parameter")
    params.extend(values)
    return numbered


def _placeholder(value: Any, params: list[Any]) -> str:
    """`value` as a constant (`_constant`), or as a numbered parameter added to `params`."""
    constant = _constant(value)
    if constant:
        return constant
    params.append(value)
    return f"${len(params)}"


def insert_unless_conflict_with_children(
    parent: models.Model,
    children: list[models.Model],
    *,
    then: Sequence[tuple[str, str, Sequence[Any]]] = (),
) -> list[Any] | None:
    """`insert_unless_conflict(parent)`, with its new `children` (objects of one model) in the same statement
    only when it was inserted: None when it was not, else what each of `then` returned.

    The children's primary keys come from their sequence in the same statement, ascending in list order; a
    child's foreign key to `parent` or to another child of the list (assigned as objects, unsaved) is filled
    in there too. One round trip: the caller needs no transaction for the three of them. Sends no signals.
    `then`: more writes of the same statement, (name, SQL with %s placeholders, parameters) each, that run once
    per row of `FROM ids` (the parent's row when it was inserted, none else) and return one column of at most
    one row (a later one may read an earlier one's by its name); the value each returned, or None, is returned.

    The statement is prepared (netia.prepared): its text is the same for every write of the same shape in a
    schema (tables named with their schema; only constants written out, every value that changes from one row
    to the next a parameter), so PostgreSQL parses and plans it once per connection, not on every turn.
    """
    model = type(children[0])
    params: list[Any] = []
    parent_columns, parent_fields = _columns(type(parent), with_pk=False)
    parent_values = [_placeholder(value, params) for value in _values([parent], parent_fields)[0]]
    meta = model._meta
    schema = connection.schema_name  # type: ignore[attr-defined]
    table = _table(model, schema)
    sequence = f"nextval(pg_get_serial_sequence({_name_literal(table)}, {_name_literal(str(meta.pk.column))}))"
    count = len(children)
    quote = connection.ops.quote_name
    parent_insert = (
        f"INSERT INTO {_table(type(parent), schema)} ({parent_columns}) VALUES ({', '.join(parent_values)}) "  # noqa: S608
        f"ON CONFLICT DO NOTHING RETURNING {quote(str(type(parent)._meta.pk.column))}, "
        + ", ".join(f"{sequence} AS n{i}" for i in range(count))
    )
    # The children's ids in ascending order (nextval's order within a row is not promised).
    taken = ", ".join(f"n{i}" for i in range(count))
    ctes = [
        f"parent AS ({parent_insert})",
        f"ids AS (SELECT id, ARRAY(SELECT unnest(ARRAY[{taken}]) ORDER BY 1) AS c FROM parent)",  # noqa: S608
    ]
    expressions = {id(parent): "ids.id", **{id(child): f"ids.c[{i + 1}]" for i, child in enumerate(children)}}
    child_columns, fields = _columns(model, with_pk=True)
    pk = meta.pk
    links: list[tuple[Any, str]] = [(f, f.attname) for f in fields if f.is_relation and f.many_to_one]
    for i, (child, values) in enumerate(zip(children, _values(children, fields), strict=True)):
        linked = {attname: expressions.get(id(f.get_cached_value(child, None))) for f, attname in links}
        columns = []
        for field, value in zip(fields, values, strict=True):
            expression = expressions[id(child)] if field is pk else linked.get(field.attname)
            columns.append(_placeholder(value, params) if expression is None else expression)
        ctes.append(f"child{i} AS (INSERT INTO {table} ({child_columns}) SELECT {', '.join(columns)} FROM ids)")  # noqa: S608
    for name, statement, statement_params in then:
        ctes.append(f"{name} AS ({_numbered(statement, params, statement_params)})")
    results = "".join(f", (SELECT * FROM {name})" for name, _, _ in then)  # noqa: S608 - the caller's names
    rows = prepared_rows(f"WITH {', '.join(ctes)} SELECT id, c{results} FROM ids", params)  # noqa: S608
    if not rows:
        return None
    (row,) = rows
    parent.pk = row[0]
    _saved(parent)
    for child, child_id in zip(children, row[1], strict=True):
        child.pk = child_id
        _saved(child)
    for child in children:
        for f, attname in links:
            target = f.get_cached_value(child, None)
            if target is parent or any(target is other for other in children):
                setattr(child, attname, target.pk)
                f.set_cached_value(child, target)  # the id's setter forgot the object; it is the same row
    return list(row[2:])
