"""Input serializers with strict JSON types: `{"message": 12345}` is a 400, not the message "12345".

DRF coerces (numbers to strings, "true" to booleans, "12" to integers). Every request body of the API is
read by a serializer built on `StrictSerializer` / `StrictModelSerializer`, which first checks that each value
has the JSON type its field stands for, then lets DRF validate as usual.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

_STRING_FIELDS = (
    serializers.CharField,
    serializers.UUIDField,
    serializers.DateTimeField,
    serializers.DateField,
    serializers.TimeField,
    serializers.DurationField,
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def type_error(field: serializers.Field, value: Any) -> str | None:
    """Why `value` (decoded JSON) has the wrong type for `field`, or None when the type is right.

    null is left to the field (`allow_null`); JSON-valued fields accept anything.
    """
    if value is None or isinstance(field, serializers.JSONField):
        return None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Expected a boolean."
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else "Expected an integer."
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        return None if _is_number(value) else "Expected a number."
    if isinstance(field, serializers.MultipleChoiceField | serializers.ListField | serializers.ListSerializer):
        if not isinstance(value, list):
            return "Expected a list."
        child = getattr(field, "child", None)
        if child is not None:
            for item in value:
                if (error := type_error(child, item)) is not None:
                    return f"Every item: {error[0].lower()}{error[1:]}"
        return None
    if isinstance(field, serializers.ChoiceField):
        if all(isinstance(choice, str) for choice in field.choices):
            return None if isinstance(value, str) else "Expected a string."
        return None
    if isinstance(field, _STRING_FIELDS):
        return None if isinstance(value, str) else "Expected a string."
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict):
            return "Expected an object."
        for item in value.values():
            if (error := type_error(field.child, item)) is not None:
                return f"Every value: {error[0].lower()}{error[1:]}"
        return None
    if isinstance(field, serializers.BaseSerializer):
        return None if isinstance(value, dict) else "Expected an object."
    return None


class StrictTypesMixin:
    """Refuse values whose JSON type does not match their field before DRF coerces them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {
                name: [error]
                for name, field in self.fields.items()  # type: ignore[attr-defined]
                if not field.read_only and name in data and (error := type_error(field, data[name])) is not None
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictSerializer(StrictTypesMixin, serializers.Serializer):
    """Base of every request-body serializer."""


class StrictModelSerializer(StrictTypesMixin, serializers.ModelSerializer):
    """Base of request-body model serializers."""
