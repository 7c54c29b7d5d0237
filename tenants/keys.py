"""Bearer secret keys shaped `<scheme>_<prefix>_<secret>`: tenant API keys (`nk`) and staff keys (`ns`).

The public prefix finds the row; only the SHA-256 of the whole key is stored and compared in constant time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.db.models import QuerySet
from django.utils import timezone

from netia.errors import AuthenticationFailed
from tenants.models import HashedKey

T = TypeVar("T")
K = TypeVar("K", bound=HashedKey)
# last_used_at is written at most this often per key, so authentication stays a read on the hot path.
KEY_TOUCH_INTERVAL = timedelta(seconds=60)


def hash_api_key(raw_key: str) -> str:
    """SHA-256 hex of a full key (keys carry 256 bits of entropy, so no slow hash is needed)."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: `raw` is shown once; `prefix` and `secret_hash` are stored."""

    prefix: str
    raw: str
    secret_hash: str


def key_generate(*, scheme: str) -> NewKey:
    """A new random key of the given scheme."""
    prefix = secrets.token_hex(6)
    raw = f"{scheme}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(prefix=prefix, raw=raw, secret_hash=hash_api_key(raw))


def key_authenticate(*, keys: QuerySet[K], raw_key: str, check: Callable[[K], None] | None = None) -> K:
    """The live key of `keys` (a queryset of one HashedKey model) that `raw_key` is, its use recorded.

    AuthenticationFailed for a wrong or revoked key; `check` may refuse the key further (raising) before its
    use is recorded. `last_used_at` is written at most once a minute, so this stays a read on the hot path.
    """
    key = key_resolve(
        scheme=keys.model.scheme,
        raw_key=raw_key,
        find=lambda prefix: keys.filter(prefix=prefix).first(),
        secret_hash=lambda found: found.secret_hash,
    )
    if key.is_revoked:
        raise AuthenticationFailed("This API key has been revoked.")
    if check is not None:
        check(key)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > KEY_TOUCH_INTERVAL:
        keys.model._default_manager.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def key_resolve(*, scheme: str, raw_key: str, find: Callable[[str], T | None], secret_hash: Callable[[T], str]) -> T:
    """The stored key `raw_key` belongs to, found by prefix with `find`; AuthenticationFailed otherwise.

    The hash is compared even when the prefix is unknown, so timing does not tell which prefixes exist.
    """
    match = re.fullmatch(rf"{re.escape(scheme)}_([0-9a-f]{{12}})_[A-Za-z0-9_-]{{20,}}", raw_key or "")
    found = find(match.group(1)) if match else None
    expected = secret_hash(found) if found is not None else hash_api_key("")
    if not secrets.compare_digest(expected, hash_api_key(raw_key or "")) or found is None:
        raise AuthenticationFailed("Invalid API key.")
    return found
