"""What Stripe accepts, read from stripe-python's own typed definitions, so the fake rejects what Stripe rejects.

stripe-python (15.x) ships, generated from Stripe's OpenAPI spec, a TypedDict per API method's parameters
(`stripe.params.CustomerCreateParams`, nested TypedDicts for nested hashes, `Literal[...]` for enums) and a
typed class per resource (`stripe.Subscription`, whose `customer: ExpandableField["Customer"]` says the
field can be expanded). `params_check` validates a decoded form body (nested dicts and lists of strings, as
the client sends them) against a params TypedDict; `expand_check` validates an `expand[]` path against a
resource class.

Two readings are deliberate: an enum typed `Literal['a', 'b']|str` accepts only `a` and `b` (the `|str` is the
SDK's room for values added later; Stripe itself rejects unknown ones), and the SDK's types mark expandable
ids (`ExpandableField`) but not Stripe's "includable" fields (present only when expanded, e.g.
`customer.subscriptions`): those few are listed in INCLUDABLE, from Stripe's API reference.
"""

from __future__ import annotations

import functools
import re
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

import typing_extensions
from stripe._request_options import RequestOptions

_REQUEST_OPTIONS = frozenset(RequestOptions.__annotations__)
_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")
MAX_EXPAND_DEPTH = 4
# Fields Stripe returns only when asked with `expand` ("This field is not included by default"), by the
# qualified name of the SDK class that holds them.
INCLUDABLE: dict[str, frozenset[str]] = {
    "Customer": frozenset({"cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax_ids"}),
    "Session": frozenset({"line_items"}),
    "Session.TotalDetails": frozenset({"breakdown"}),
    "Price": frozenset({"currency_options", "tiers"}),
    "Invoice": frozenset({"payments"}),
    "LineItem": frozenset({"discounts", "taxes"}),
}


@dataclass(frozen=True)
class SchemaError(Exception):
    """A request Stripe would refuse: its message, the parameter it names, and Stripe's error code."""

    message: str
    param: str
    code: str = "parameter_invalid"

    def __str__(self) -> str:
        return self.message


class _Unresolved:
    """A name the SDK imports only for type checkers: accepted as anything."""


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    """Evaluate a (possibly string or ForwardRef) annotation in its module's namespace."""
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        try:
            return eval(annotation, {**vars(typing), **namespace})  # noqa: S307 - the SDK's own annotation text
        except NameError:
            return _Unresolved
    return annotation


def _namespace(owner: type) -> dict[str, Any]:
    return vars(sys.modules[owner.__module__])


def _unwrap(annotation: Any) -> Any:
    """Strip NotRequired/Required/Optional-less wrappers that say nothing about the value's type."""
    while typing.get_origin(annotation) in (typing.NotRequired, typing.Required):
        (annotation,) = typing.get_args(annotation)
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _is_typeddict(annotation: Any) -> bool:
    return isinstance(annotation, type) and typing_extensions.is_typeddict(annotation)


@functools.cache
def _fields(params: type) -> dict[str, Any]:
    """The TypedDict's keys (request options left out) with their resolved annotations."""
    namespace = _namespace(params)
    return {
        name: _resolve(_unwrap(annotation), namespace)
        for name, annotation in params.__annotations__.items()
        if name not in _REQUEST_OPTIONS
    }


def _required(params: type) -> frozenset[str]:
    return frozenset(getattr(params, "__required_keys__", ())) - _REQUEST_OPTIONS


def _name(path: list[str]) -> str:
    """Stripe's name for a nested parameter: `a[b][0][c]`."""
    return path[0] + "".join(f"[{part}]" for part in path[1:])


def _literals(annotation: Any, namespace: dict[str, Any]) -> list[Any] | None:
    """The allowed values of an enum (a Literal, or a union of Literals and the SDK's open `str`)."""
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    if _is_union(annotation):
        members = [_resolve(a, namespace) for a in typing.get_args(annotation)]
        literal_members = [m for m in members if typing.get_origin(m) is Literal]
        others = [m for m in members if typing.get_origin(m) is not Literal]
        values = [value for m in literal_members for value in typing.get_args(m)]
        # `Literal['']|str` is not an enum: any string, "" meaning "unset".
        if literal_members and all(m is str for m in others) and any(v != "" for v in values):
            return values
    return None


def _matches(value: Any, annotation: Any, path: list[str], namespace: dict[str, Any]) -> None:
    """Raise SchemaError unless the form-decoded `value` fits `annotation` (a parameter at `path`; names in the
    annotation are those of `namespace`, its module's)."""
    annotation = _resolve(_unwrap(annotation), namespace)
    if annotation is Any or annotation is _Unresolved or isinstance(annotation, typing.TypeVar):
        return
    allowed = _literals(annotation, namespace)
    if allowed is not None:
        if value not in allowed:
            shown = ", ".join(repr(v) if v == "" else str(v) for v in allowed)
            raise SchemaError(f"Invalid {_name(path)}: must be one of {shown}", _name(path))
        return
    if _is_union(annotation):
        problems = []
        for member in typing.get_args(annotation):
            try:
                _matches(value, member, path, namespace)
            except SchemaError as problem:
                problems.append(problem)
            else:
                return
        # The most specific complaint: one about a nested key rather than about the whole value.
        raise max(problems, key=lambda p: len(p.param))
    if annotation is type(None):
        if value != "":
            raise SchemaError(f"Invalid {_name(path)}: expected an empty value", _name(path))
        return
    if annotation is str:
        if not isinstance(value, str):
            raise SchemaError(f"Invalid {_name(path)}: expected a string", _name(path))
        return
    if annotation is bool:
        if value not in ("true", "false"):
            raise SchemaError(f"Invalid boolean: {value}", _name(path))
        return
    if annotation is int:
        if not (isinstance(value, str) and _INTEGER.fullmatch(value)):
            raise SchemaError(f"Invalid integer: {value}", _name(path))
        return
    if annotation in (float, typing.SupportsFloat) or getattr(annotation, "__name__", "") == "Decimal":
        if not (isinstance(value, str) and _NUMBER.fullmatch(value)):
            raise SchemaError(f"Invalid decimal: {value}", _name(path))
        return
    origin = typing.get_origin(annotation)
    if origin in (list, typing.List):  # noqa: UP006 - the SDK's annotations use typing.List
        if value == "":
            return
        if not isinstance(value, list):
            raise SchemaError(f"Invalid array: {_name(path)} must be an array", _name(path))
        (element,) = typing.get_args(annotation) or (Any,)
        for index, item in enumerate(value):
            _matches(item, element, [*path, str(index)], namespace)
        return
    if origin in (dict, typing.Dict) or getattr(origin, "__name__", "") == "UntypedStripeObject":  # noqa: UP006
        if value == "":
            return
        if not isinstance(value, dict):
            raise SchemaError(f"Invalid object: {_name(path)} must be a hash", _name(path))
        arguments = typing.get_args(annotation)
        element = arguments[-1] if arguments else Any
        for key, item in value.items():
            _matches(item, element, [*path, key], namespace)
        return
    if _is_typeddict(annotation):
        if value == "":
            return
        if not isinstance(value, dict):
            raise SchemaError(f"Invalid object: {_name(path)} must be a hash", _name(path))
        _check_keys(value, annotation, path)
        return
    if isinstance(annotation, type) and getattr(annotation, "__name__", "") == "UntypedStripeObject":
        return
    raise TypeError(f"stripe_schema does not know the annotation {annotation!r} (at {_name(path)})")


def _check_keys(values: dict[str, Any], params: type, path: list[str]) -> None:
    fields = _fields(params)
    for key, value in values.items():
        if key not in fields:
            name = _name([*path, key])
            raise SchemaError(f"Received unknown parameter: {name}", name, code="parameter_unknown")
        _matches(value, fields[key], [*path, key], _namespace(params))
    for key in sorted(_required(params) - set(values)):
        name = _name([*path, key])
        raise SchemaError(f"Missing required param: {name}.", name, code="parameter_missing")


def params_check(values: dict[str, Any], params: type) -> None:
    """Raise SchemaError unless the decoded request parameters are valid for the params TypedDict."""
    for key, value in values.items():
        if key == "expand":
            continue
        if key not in _fields(params):
            raise SchemaError(f"Received unknown parameter: {key}", key, code="parameter_unknown")
        _matches(value, _fields(params)[key], [key], _namespace(params))
    for key in sorted(_required(params) - set(values)):
        raise SchemaError(f"Missing required param: {key}.", key, code="parameter_missing")


# -- expand paths -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListOf:
    """A list endpoint's answer: a list object whose `data` are `resource`s."""

    resource: type


@functools.cache
def _attributes(resource: type) -> dict[str, Any]:
    """A resource class's typed attributes (its MRO's), unresolved."""
    found: dict[str, Any] = {}
    for klass in reversed(resource.__mro__):
        found.update({name: (klass, annotation) for name, annotation in vars(klass).get("__annotations__", {}).items()})
    return found


def _class_named(name: str, owner: type) -> type | None:
    """A class the SDK names in an annotation: nested in `owner`, in its module, or exported by `stripe`."""
    import stripe

    for scope in (owner, sys.modules[owner.__module__], stripe):
        found = getattr(scope, name, None)
        if isinstance(found, type):
            return found
    return None


def _as_class(annotation: Any, owner: type) -> type | None:
    """The class an annotation member names (a ForwardRef or string is looked up where the SDK defines it)."""
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        return _class_named(annotation.strip().rsplit(".", 1)[-1], owner)
    return annotation if isinstance(annotation, type) else None


def _expandable_to(members: list[Any], owner: type) -> tuple[type | None, bool] | None:
    """For `ExpandableField[X]` (`Union[str, X]`, X possibly a union of classes): (X, True); else None."""
    others = [m for m in members if m is not str]
    if str not in members or not others:
        return None
    classes = [_as_class(m, owner) for m in others]
    if not all(c is not None and c is not _Unresolved for c in classes):
        return None
    return (classes[0] if len(classes) == 1 else None), True


def _step(resource: type | ListOf, segment: str) -> tuple[type | ListOf | None, bool]:
    """Follow one expand segment: (what it leads to, whether the segment itself may be expanded).

    `ExpandableField[X]` is `Union[str, X]` at run time (an id, or the object when expanded).
    """
    if isinstance(resource, ListOf):
        return (resource.resource, False) if segment == "data" else (None, False)
    attribute = _attributes(resource).get(segment)
    if attribute is None:
        return None, False
    owner, annotation = attribute
    if isinstance(annotation, str):
        annotation = (
            _as_class(annotation, owner) if annotation.isidentifier() else _resolve(annotation, _namespace(owner))
        )
    includable = segment in INCLUDABLE.get(resource.__qualname__, ())
    members = [m for m in (typing.get_args(annotation) if _is_union(annotation) else [annotation]) if m is not None]
    members = [m for m in members if m is not type(None)]
    expandable = _expandable_to(members, owner)
    if expandable is not None:
        return expandable
    if len(members) != 1:
        return None, includable
    (member,) = members
    origin, arguments = typing.get_origin(member), typing.get_args(member)
    name = getattr(origin or member, "__name__", "")
    if name == "ListObject":
        element = _as_class(arguments[0], owner) if arguments else None
        return (ListOf(element) if element else None), includable
    if origin in (list, typing.List):  # noqa: UP006 - the SDK's annotations use typing.List
        element = arguments[0] if arguments else Any
        inner = list(typing.get_args(element)) if _is_union(element) else [element]
        expandable = _expandable_to(inner, owner)  # List[ExpandableField[X]]
        if expandable is not None:
            return expandable
        return _as_class(element, owner), includable
    if name == "UntypedStripeObject":
        return None, includable
    return _as_class(member, owner), includable


def expand_check(path: str, resource: type | ListOf) -> None:
    """Raise SchemaError unless `path` (e.g. `data.items.data.price.product`) can be expanded on `resource`."""
    segments = path.split(".")
    expanded = [s for s in segments if s != "data"]
    if len(expanded) > MAX_EXPAND_DEPTH:
        raise SchemaError(
            f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. Property: {path}", "expand"
        )
    current: type | ListOf | None = resource
    for position, segment in enumerate(segments):
        if current is None:
            break
        current, expandable = _step(current, segment)
        last = position == len(segments) - 1
        if last and not expandable:
            raise SchemaError(f"This property cannot be expanded ({path}).", "expand")
        if current is None and not last:
            raise SchemaError(f"This property cannot be expanded ({path}).", "expand")
