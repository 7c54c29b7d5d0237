"""Model fields shared by several apps."""

from __future__ import annotations

from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(value: str) -> str:
    """Encrypt with the first configured key."""
    return _fernet(tuple(settings.NETIA_ENCRYPTION_KEYS)).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt with any configured key."""
    return _fernet(tuple(settings.NETIA_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Text encrypted at rest with Fernet (NETIA_ENCRYPTION_KEYS); plain text in Python.

    Not searchable or orderable in SQL. An empty string is stored as is.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        try:
            return decrypt(value)
        except InvalidToken as exc:
            raise ValueError(f"{self.model.__name__}.{self.name} cannot be decrypted with the configured keys") from exc

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)


def max_length(model: type[models.Model], field: str) -> int:
    """A column's max_length, so input checks and truncations follow the column (one place for each rule)."""
    length = getattr(model._meta.get_field(field), "max_length", None)
    if not isinstance(length, int):
        raise TypeError(f"{model.__name__}.{field} has no max_length")
    return length
