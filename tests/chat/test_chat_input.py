"""The chat body's check (`chat_input_validate`) is InputSerializer's: the same errors and the same values for
any decoded JSON body, the awkward ones (whitespace, NUL, surrogates, limits, wrong types, null) above all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.api.public import ChatInput, ChatMessageCreateApi, chat_input_validate
from netia.errors import ValidationFailed

_texts = st.one_of(
    st.text(max_size=8),
    st.text(alphabet=" \t\n\x00\ud800\udfffab@.", max_size=6),
    st.sampled_from(["", " ", "hi", " hi\n", "ana@example.com", " ana@example.com ", "nope", "a@b", "x@\x00.com"]),
    st.tuples(
        st.sampled_from([127, 128, 199, 200, 511, 512, 3999, 4000]), st.integers(0, 2), st.sampled_from(["", " "])
    ).map(lambda t: t[2] + "x" * (t[0] + t[1] - 1) + t[2]),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _texts)
_mostly_texts = st.one_of(
    _texts,
    _texts,
    _texts,
    _scalars,
    st.lists(_scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
)
_visitors = st.one_of(
    st.fixed_dictionaries({}, optional={"name": _mostly_texts, "email": _mostly_texts, "x": _scalars}), _mostly_texts
)
_objects = st.fixed_dictionaries(
    {},
    optional={
        "message": _mostly_texts,
        "session_id": _mostly_texts,
        "conversation_token": _mostly_texts,
        "visitor": _visitors,
        "other": _scalars,
    },
)
_bodies = st.one_of(_objects, _objects, _objects, _scalars, st.lists(_scalars, max_size=2))


def _drf(body: Any) -> tuple[str, Any]:
    serializer = ChatMessageCreateApi.InputSerializer(data=body)
    if not serializer.is_valid():
        return "invalid", json.loads(json.dumps(serializer.errors))
    data = serializer.validated_data
    visitor = data.get("visitor", {})
    return "valid", ChatInput(
        message=data["message"],
        session_id=data.get("session_id", ""),
        conversation_token=data.get("conversation_token", ""),
        visitor_name=visitor.get("name", ""),
        visitor_email=visitor.get("email", ""),
    )


def _ours(body: Any) -> tuple[str, Any]:
    try:
        return "valid", chat_input_validate(body)
    except ValidationFailed as error:
        return "invalid", json.loads(json.dumps(error.extra["fields"]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies)
def test_any_body_gets_what_the_serializer_gives(body):
    assert _ours(body) == _drf(body)


@pytest.mark.parametrize(
    "body",
    [
        {"session_id": " s ", "message": " hi ", "visitor": {"name": " Ana ", "email": " ana@example.com "}},
        {"conversation_token": "t", "message": "hi", "visitor": {}},
        {"message": "hi", "visitor": {"name": "", "email": ""}},
        {"message": "x" * 4000, "session_id": "s" * 128},
        {"message": "x" * 4001, "session_id": "", "conversation_token": None, "visitor": {"email": "a\x00@b.c"}},
        {"message": "\ud800\udfff", "visitor": {"name": 1, "email": "nope"}},
        {"session_id": "a", "conversation_token": "b", "message": "hi"},
        {"message": True, "visitor": "x"},
        {},
        None,
        [],
        "text",
        3,
    ],
)
def test_known_bodies_get_what_the_serializer_gives(body):
    assert _ours(body) == _drf(body)


VALUES: list[Any] = [
    None,
    True,
    1,
    1.5,
    [],
    {},
    "",
    " ",
    "\t\n",
    "hi",
    " hi ",
    "a\x00b",
    "\ud800",
    "a\udfffb\ud800",
    "ana@example.com",
    " ana@example.com ",
    "nope",
    *("x" * size for size in (127, 128, 129, 199, 200, 201, 511, 512, 513, 3999, 4000, 4001)),
    " " + "x" * 128 + " ",
    " " + "x" * 4000 + "\n",
]


def test_every_value_of_every_field_gets_what_the_serializer_gives():
    bodies: list[Any] = [{}, {"session_id": "s"}, {"visitor": {}}]
    for base in ({"message": "hi"}, {"message": "hi", "session_id": "s"}, {"message": "hi", "conversation_token": "t"}):
        for name in ("session_id", "conversation_token", "message", "visitor"):
            bodies += [{**base, name: value} for value in VALUES]
    for name in ("name", "email"):
        bodies += [{"message": "hi", "visitor": {name: value}} for value in VALUES]
        bodies += [{"message": "hi", "visitor": {name: value, "email": "nope"}} for value in VALUES]

    assert [(body, _ours(body)) for body in bodies if _ours(body) != _drf(body)] == []


def test_the_check_reads_every_field_of_the_serializer_as_declared():
    from django.core.validators import (
        EmailValidator,
        MaxLengthValidator,
        MinLengthValidator,
        ProhibitNullCharactersValidator,
    )
    from rest_framework.fields import CharField, EmailField, empty
    from rest_framework.validators import ProhibitSurrogateCharactersValidator

    from chat.api.public import _TOP, _VISITOR

    top = ChatMessageCreateApi.InputSerializer().fields
    visitor = top["visitor"]
    assert [f.name for f in _TOP] == [name for name in top if name != "visitor"]
    assert isinstance(visitor, ChatMessageCreateApi.InputSerializer.Visitor)
    assert (visitor.required, visitor.allow_null, visitor.default) == (False, False, empty)
    assert [f.name for f in _VISITOR] == list(visitor.fields) == ["name", "email"]
    plain = {MaxLengthValidator, MinLengthValidator, ProhibitNullCharactersValidator}
    plain.add(ProhibitSurrogateCharactersValidator)
    for fields, copies in ((top, _TOP), (visitor.fields, _VISITOR)):
        for copy in copies:
            field: Any = fields[copy.name]
            # What the check copies...
            assert (field.max_length, field.min_length, field.allow_blank, field.required) == (
                copy.max_length,
                copy.min_length,
                copy.allow_blank,
                copy.required,
            )
            assert type(field) is (EmailField if copy.email else CharField)
            # ...and what it takes for DRF's defaults.
            assert (field.allow_null, field.trim_whitespace, field.read_only) == (False, True, False)
            assert field.default is empty
            assert field.source == copy.name
            assert {type(v) for v in field.validators} <= plain | ({EmailValidator} if copy.email else set())
    assert [(f.name, f.max_length, f.min_length, f.allow_blank, f.required) for f in _TOP] == [
        ("session_id", 128, 1, False, False),
        ("conversation_token", 512, 1, False, False),
        ("message", 4000, 1, False, True),
    ]
