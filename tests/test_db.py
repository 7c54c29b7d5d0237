"""netia.db's plain INSERTs: the values they send are the ORM's own, and the statements psycopg can cache."""

from __future__ import annotations

import datetime
import uuid
import warnings
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import Model, Value
from django.db.models.functions import Now
from django.db.models.sql.subqueries import InsertQuery
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int4, Int8

from chat.models import Conversation, Message
from netia import db
from netia.db import insert_unless_conflict, insert_unless_conflict_with_children

# Every kind of value a model attribute may hold before an INSERT, the odd ones included.
SAMPLES: list[Any] = [
    None,
    "",
    "text",
    Conversation.Status.BOT,  # a TextChoices member: a str subclass
    "7",
    "6f1f0a52-3a3e-4a39-9c62-2f0f9d7c2a10",
    True,
    False,
    0,
    7,
    2**40,
    7.5,
    Decimal("1.25"),
    uuid.UUID("6f1f0a52-3a3e-4a39-9c62-2f0f9d7c2a10"),
    datetime.datetime(2026, 5, 1, 12, 30, tzinfo=datetime.UTC),
    datetime.datetime(2026, 5, 1, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    datetime.datetime(2026, 5, 1, 12, 30),  # noqa: DTZ001 - naive on purpose
    datetime.date(2026, 5, 1),
    {"a": [1, 2]},
    [1, "x"],
    {},
    [],
    b"bytes",
    Value("v"),
    Now(),
]


def _comparable(value: Any) -> Any:
    """A prepared value as something == can compare, its type included (psycopg's wrappers compare by identity)."""
    if isinstance(value, Jsonb):
        return (Jsonb, value.obj, value.dumps)
    if hasattr(value, "resolve_expression") or hasattr(value, "as_sql"):
        return (type(value), repr(value))
    return (type(value), value)


def _orm_prepared(model: type[Model], field: Any, value: Any) -> Any:
    """What Django's own INSERT compiler sends for `field` holding `value` (or the exception it raises)."""
    obj = model()
    setattr(obj, field.attname, value)
    query = InsertQuery(model)
    query.insert_values([field], [obj])
    compiler = query.get_compiler(connection=connection)
    try:
        return _comparable(compiler.prepare_value(field, compiler.pre_save_val(field, obj))), obj
    except Exception as error:  # the same failure is the expected answer
        return (type(error), str(error)), obj


def _fast_prepared(model: type[Model], field: Any, value: Any) -> Any:
    obj = model()
    setattr(obj, field.attname, value)
    try:
        return _comparable(db._values([obj], (field,))[0][0]), obj
    except Exception as error:
        return (type(error), str(error)), obj


def _concrete_fields() -> list[tuple[type[Model], Any]]:
    return [
        (model, field)
        for model in apps.get_models()
        if not model._meta.proxy and model._meta.managed
        for field in model._meta.local_concrete_fields
    ]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_every_field_of_every_model_is_prepared_as_the_orm_prepares_it(value: Any) -> None:
    differences = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # naive datetimes warn on both paths
        for model, field in _concrete_fields():
            if db._field_plan(field)[3] == db._ORM:
                continue  # prepared by the ORM's own code (an encrypted field's value differs every time)
            (orm, _), (fast, fast_obj) = _orm_prepared(model, field, value), _fast_prepared(model, field, value)
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                # Both took the time now (a moment apart) and left it on the object: the same kind of value.
                assert orm[0] is fast[0] is datetime.datetime, field
                assert getattr(fast_obj, field.attname) == fast[1], field
                continue
            if orm != fast:
                differences.append((f"{model._meta.label}.{field.name}", orm, fast))
    assert differences == []


def test_the_chat_turns_models_take_no_field_the_orm_way() -> None:
    # A chat turn inserts a conversation and two messages: a field of a class _KINDS does not know would
    # quietly make every turn prepare it through the ORM again (correct, only slower).
    slow = [
        f"{model.__name__}.{plan[0].name}"
        for model in (Conversation, Message)
        for plan in db._plan(tuple(model._meta.local_concrete_fields))
        if plan[3] == db._ORM
    ]
    assert slow == []


def _executed(statements: list[tuple[str, list[Any]]]) -> Any:
    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    return connection.execute_wrapper(record)


def _columns(obj: Model) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _chat_turn(conversation: Conversation) -> tuple[Message, Message]:
    """A first turn's two unsaved messages: the visitor's, naming the bot's answer."""
    reply = Message(
        conversation=conversation,
        channel=conversation.channel,
        role=Message.Role.BOT,
        content="Hello",
        intent="greeting",
        intent_keywords=["hi"],
        sources=[{"title": "Hours"}],
    )
    visitor = Message(
        conversation=conversation,
        channel=conversation.channel,
        role=Message.Role.VISITOR,
        content="Hi",
        answered_by=reply,
    )
    return visitor, reply


def test_a_conversation_and_its_two_messages_are_one_prepared_statement_the_same_for_the_next_such_turn(
    tenant: Any,
) -> None:
    with tenant_context(tenant):
        conversation = Conversation(channel=Conversation.Channel.API, session_id="db-test", visitor_name="Ana")
        visitor, reply = _chat_turn(conversation)
        next_one = Conversation(channel=Conversation.Channel.API, session_id="db-test-next", visitor_name="Bo")
        statements: list[tuple[str, list[Any]]] = []
        with _executed(statements):
            assert insert_unless_conflict_with_children(conversation, [visitor, reply]) == []
            assert insert_unless_conflict_with_children(next_one, list(_chat_turn(next_one))) == []
        with connection.cursor() as cursor:
            # The foreign keys are deferred to the commit, which this test's transaction never reaches.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # The same, written by the ORM.
        orm_conversation = Conversation.objects.create(
            channel=Conversation.Channel.API, session_id="db-test-orm", visitor_name="Ana"
        )
        orm_visitor, orm_reply = _chat_turn(orm_conversation)
        orm_reply.save()
        orm_visitor.answered_by = orm_reply
        orm_visitor.save()

        # 20 + 2 x 26 columns: the ids and links come from the statement; the constants (NULL, booleans, '',
        # choices, empty JSON) are written out, and so is the messages' sequence; what changes from one turn to
        # the next is a parameter: the conversation's UUID, session, visitor name and two times, each message's
        # UUID, text, delivery attempts and time, the answer's intent, keywords and sources.
        (first, first_params), (second, _) = statements
        assert first.startswith("WITH ")
        assert len(first_params) == 5 + 4 + 7
        assert first == second  # one prepared statement for both
        assert f'INSERT INTO "{tenant.schema_name}"."chat_conversation" ' in first
        assert f'INSERT INTO "{tenant.schema_name}"."chat_message" ' in first
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [first])
            assert cursor.fetchone()[0] == 1
        assert (visitor.conversation_id, reply.conversation_id, visitor.answered_by_id) == (
            conversation.pk,
            conversation.pk,
            reply.pk,
        )
        assert conversation.pk is not None
        assert visitor.pk < reply.pk
        with CaptureQueriesContext(connection) as read:
            assert (visitor.conversation, visitor.answered_by, reply.conversation) == (
                conversation,
                reply,
                conversation,
            )
        assert read.captured_queries == []  # the objects are still the ones given
        stored = {m.pk: m for m in Message.objects.filter(conversation__in=[conversation, orm_conversation])}
        unique = {"id", "public_id", "created_at", "answered_by_id", "conversation_id"}
        for ours, theirs in ((visitor, orm_visitor), (reply, orm_reply)):
            row, orm_row = _columns(stored[ours.pk]), _columns(stored[theirs.pk])
            assert {k: v for k, v in row.items() if k not in unique} == {
                k: v for k, v in orm_row.items() if k not in unique
            }
            assert row == _columns(ours)  # what the object says is what was stored
        assert (stored[visitor.pk].answered_by_id, stored[orm_visitor.pk].answered_by_id) == (reply.pk, orm_reply.pk)
        assert _columns(Conversation.objects.get(pk=conversation.pk)) == _columns(conversation)
        assert (visitor._state.adding, reply._state.adding, conversation._state.adding) == (False, False, False)


def test_a_turn_s_two_messages_touch_only_the_indexes_their_lookups_use(tenant: Any) -> None:
    """chat_message is the table every turn writes twice: no index repeats another's leading column (lookups
    by conversation use (conversation_id, created_at)), and answered_by is indexed only where it is set (a bot
    message never is): four index entries per message, three for a bot's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'chat_message'",
            [tenant.schema_name],
        )
        indexes = {name: definition.split(" USING ", 1)[1] for name, definition in cursor.fetchall()}

    leading = [definition.split("(", 1)[1].split(")")[0].split(",")[0] for definition in indexes.values()]
    assert sorted(leading) == sorted(set(leading))  # no two indexes start with the same column
    assert indexes["message_answered_by_idx"] == "btree (answered_by_id) WHERE (answered_by_id IS NOT NULL)"
    assert not any(d.startswith("btree (conversation_id)") for d in indexes.values())
    assert any(d.startswith("btree (conversation_id, created_at)") for d in indexes.values())


def _last_message_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM pg_sequences WHERE sequencename = 'chat_message_id_seq'")
        return cursor.fetchone()[0] or 0


def test_without_prepared_statements_the_same_write_is_sent_unnamed(tenant: Any, settings: Any) -> None:
    """DATABASE_PREPARED_STATEMENTS=false (a pooler that keeps none): the same statement, bound server-side,
    never prepared."""
    settings.DATABASE_PREPARED_STATEMENTS = False
    with tenant_context(tenant):
        conversation = Conversation(channel=Conversation.Channel.API, session_id="unnamed", visitor_name="Cy")
        visitor, reply = _chat_turn(conversation)
        reply.private = True  # a shape no other test writes: its statement is new to this session
        statements: list[tuple[str, list[Any]]] = []

        with _executed(statements):
            assert insert_unless_conflict_with_children(conversation, [visitor, reply]) == []

        assert list(Message.objects.filter(conversation=conversation).values_list("pk", "answered_by_id")) == [
            (visitor.pk, reply.pk),
            (reply.pk, None),
        ]
        ((sql, _),) = statements
        assert sql not in _prepared()


def _prepared() -> list[str]:
    """The statements this session has prepared (their text)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]


def test_a_conversation_whose_session_is_taken_inserts_nothing_and_takes_no_ids(tenant: Any) -> None:
    with tenant_context(tenant):
        first = Conversation(channel=Conversation.Channel.API, session_id="taken")
        assert insert_unless_conflict(first)
        second = Conversation(channel=Conversation.Channel.API, session_id="taken", visitor_name="Other")
        visitor, reply = _chat_turn(second)
        before = _last_message_id()

        assert insert_unless_conflict_with_children(second, [visitor, reply]) is None

        assert _last_message_id() == before
        assert (second.pk, visitor.pk, reply.pk, second._state.adding, visitor._state.adding) == (
            None,
            None,
            None,
            True,
            True,
        )
        assert list(Conversation.objects.filter(session_id="taken").values_list("pk", "visitor_name")) == [
            (first.pk, "")
        ]
        assert not Message.objects.filter(conversation__session_id="taken").exists()


def test_the_writes_that_follow_run_in_the_same_statement_only_when_the_parent_was_inserted(tenant: Any) -> None:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE then_log (parent bigint, note text)")
        logged = "INSERT INTO then_log SELECT id, %s FROM ids RETURNING note"
        first = Conversation(channel=Conversation.Channel.API, session_id="then")
        statements: list[tuple[str, list[Any]]] = []
        with _executed(statements):
            written = insert_unless_conflict_with_children(
                first, list(_chat_turn(first)), then=[("logged", logged, ["first"]), ("again", "SELECT 7", [])]
            )
        second = Conversation(channel=Conversation.Channel.API, session_id="then")
        lost = insert_unless_conflict_with_children(
            second, list(_chat_turn(second)), then=[("logged", logged, ["second"])]
        )
        cursor.execute("SELECT parent, note FROM then_log")
        log = cursor.fetchall()

    assert (written, lost) == (["first", 7], None)
    assert [sql.split(None, 1)[0] for sql, _ in statements if not sql.startswith("SET")] == ["WITH"]
    assert log == [(first.pk, "first")]  # the lost session's write never ran


def _built(obj: Model) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """An object's attributes and state, callable defaults (a new UUID, the time now) as their type only."""
    made = {f.attname for f in obj._meta.concrete_fields if f.has_default() and callable(f.default)}
    attributes = {k: type(v) if k in made else v for k, v in vars(obj).items() if k != "_state"}
    return attributes, (obj._state.adding, obj._state.db, obj._state.fields_cache)


@pytest.mark.parametrize("model", [m for m in apps.get_models() if not m._meta.proxy], ids=lambda m: m._meta.label)
def test_an_unsaved_object_is_built_as_the_orm_builds_it(model: type[Model]) -> None:
    assert _built(db.unsaved(model)) == _built(model())


def test_an_unsaved_object_takes_values_by_attname_and_related_objects_by_name() -> None:
    conversation = Conversation(channel=Conversation.Channel.API, session_id="s")
    reply = Message(conversation=conversation, channel="api", role=Message.Role.BOT, content="Hello")
    given = {
        "conversation": conversation,
        "channel": conversation.channel,
        "role": Message.Role.VISITOR,
        "content": "Hi",
        "answered_by": reply,
        "intent_keywords": ["hi"],
        "prompt_tokens": 3,
        "public_id": uuid.UUID("6f1f0a52-3a3e-4a39-9c62-2f0f9d7c2a10"),
    }

    ours, theirs = db.unsaved(Message, **given), Message(**given)

    assert _built(ours) == _built(theirs)
    assert ours.conversation is conversation
    assert ours.answered_by is reply
    assert (conversation._state.db, reply._state.db) == ("default", "default")  # as the assignment left them
    assert _built(db.unsaved(Message, conversation_id=7, answered_by=None)) == _built(
        Message(conversation_id=7, answered_by=None)
    )
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        db.unsaved(Message, nope=1)
    with pytest.raises(ValueError, match="must be a Conversation instance"):
        db.unsaved(Message, conversation=reply)


@pytest.mark.django_db
@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_a_written_out_value_is_the_literal_client_side_binding_sends_for_it(value: Any) -> None:
    # Every model field's prepared value (as _values prepares it), written out whenever _literal writes it.
    written = []
    with warnings.catch_warnings(), connection.cursor() as cursor:
        warnings.simplefilter("ignore", RuntimeWarning)
        for model, field in _concrete_fields():
            obj = model()
            setattr(obj, field.attname, value)
            try:
                prepared = db._values([obj], (field,))[0][0]
            except Exception:  # noqa: S112 - a value the field refuses is never written
                continue
            literal = db._literal(prepared)
            if literal:
                # psycopg's client-side binding, as Django uses it.
                written.append((f"{model._meta.label}.{field.name}", literal, cursor.cursor.mogrify("%s", [prepared])))
    assert [(name, ours) for name, ours, psycopgs in written if ours != psycopgs] == []
    assert written  # the kinds below were met


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        "",
        0,
        7,
        2**40,
        Int4(0),
        Int8(5),
        Conversation.Status.BOT,
        Message.Role.VISITOR,
        Jsonb([]),
        Jsonb({}),
        uuid.UUID("6f1f0a52-3a3e-4a39-9c62-2f0f9d7c2a10"),
        datetime.datetime(2026, 5, 1, 12, 30, tzinfo=datetime.UTC),
        datetime.datetime(2026, 5, 1, 12, 30, 0, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))),
    ],
    ids=repr,
)
def test_a_value_that_needs_no_quoting_is_written_out_as_psycopg_binds_it(value: Any) -> None:
    with connection.cursor() as cursor:
        sent = cursor.cursor.mogrify("%s", [value])
    assert db._literal(value) == sent


@pytest.mark.parametrize(
    "value",
    [
        "x",
        " ",
        "it's",
        -1,
        Int4(-1),
        0.0,
        Decimal("1.25"),
        [],
        {},
        Jsonb({"a": 1}),
        Jsonb([1]),
        datetime.date(2026, 5, 1),
    ],
    ids=repr,
)
def test_any_other_value_stays_a_parameter(value: Any) -> None:
    assert db._literal(value) == ""
