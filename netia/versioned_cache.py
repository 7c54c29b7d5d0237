"""Read-through caches whose entries stay valid until their namespace's version changes.

An entry is stored with the version its namespace had when it was read from the database; a reader takes
the version and the entry in one round trip (`get_many`) and uses the entry only if the two match. Every
write to the cached rows changes the version once its transaction commits, so a reader never keeps a value
older than the last committed write, whatever order the reads and writes interleave in (an entry loaded
before a commit carries a version from before it). Versions are random tokens, not counters: a version
evicted from the cache comes back as a new token and cannot revive old entries.

Writes reach the version through `bump_on_write(model, namespaces)`: the model's save and delete signals and,
for `QuerySet.update()` (which sends none), `VersionedQuerySet`, which the model's manager must use. Raw SQL
writes must call `version_bump` themselves.

When the cache is down every read goes to the database (django-redis ignores the errors): slower, never stale.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard, TypeVar

from django.apps import apps
from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

from netia.fields import EncryptedTextField

T = TypeVar("T")
M = TypeVar("M", bound=models.Model)
DEFAULT_TIMEOUT = 3600

# model -> the namespaces its writes invalidate (a callable: a namespace may depend on the current schema).
_NAMESPACES: dict[type[models.Model], Callable[[], Iterable[str]]] = {}


def _version_key(namespace: str) -> str:
    return f"version:{namespace}"


def entry_key(namespace: str, key: str) -> str:
    """The cache key of an entry (long or secret lookup values are hashed)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"entry:{namespace}:{digest}"


# A version set inside a transaction is provisional: nothing is cached under it (what a reader loads meanwhile
# may be a write that is rolled back), and it expires unless the commit replaces it with a final one.
PROVISIONAL = "p"
PROVISIONAL_TIMEOUT = 300


def _new_version(namespace: str, *, provisional: bool = False) -> None:
    if provisional:
        cache.set(_version_key(namespace), PROVISIONAL + secrets.token_hex(8), timeout=PROVISIONAL_TIMEOUT)
    else:
        cache.set(_version_key(namespace), secrets.token_hex(8), timeout=None)


def _cacheable(version: str | None) -> TypeGuard[str]:
    """Whether entries may be stored under `version` (a final one)."""
    return version is not None and not version.startswith(PROVISIONAL)


def version_bump(namespace: str) -> None:
    """Invalidate every entry of `namespace` now and again once the current transaction commits.

    Now: this connection sees its own uncommitted write at once. Inside a transaction the new version is
    provisional: no entry is stored under it until the commit sets a final one, so a row read back before a
    rollback (the write undone) is never served afterwards; after a rollback the provisional version expires
    (PROVISIONAL_TIMEOUT) and caching resumes. After commit: another connection that read the old row before
    the commit and cached it meanwhile is invalidated again.
    """
    in_transaction = transaction.get_connection().in_atomic_block
    _new_version(namespace, provisional=in_transaction)
    if in_transaction:
        transaction.on_commit(lambda: _new_version(namespace))


class Prefetched:
    """Versions and entries read in one round trip (`prefetch`, or with other commands), for the `cached` and
    `cached_instance` calls of the same request to use instead of one round trip each."""

    def __init__(self, keys: Iterable[str], found: dict[str, Any]) -> None:
        self.keys = set(keys)
        self.found = found


def prefetch_keys(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The cache keys of the version and entry of each (namespace, key) pair, for a `Prefetched`."""
    return [k for namespace, key in pairs for k in (_version_key(namespace), entry_key(namespace, key))]


def version_keys(namespaces: Iterable[str]) -> list[str]:
    """The cache keys of the namespaces' versions, for a `Prefetched` that `cached_instance` checks its
    process-local rows against."""
    return [_version_key(namespace) for namespace in namespaces]


def prefetch(pairs: Iterable[tuple[str, str]]) -> Prefetched:
    """Read the version and entry of each (namespace, key) pair in one round trip."""
    keys = prefetch_keys(pairs)
    return Prefetched(keys, cache.get_many(keys))


def cached(
    namespace: str,
    key: str,
    load: Callable[[], T | None],
    *,
    timeout: int = DEFAULT_TIMEOUT,
    prefetched: Prefetched | None = None,
) -> T | None:
    """The value cached for `key` in `namespace` if still current, else `load()` (cached unless None).

    `prefetched`: read in this request (`prefetch`), used when it holds the pair; the check is the same.
    """
    return _read_through(namespace, key, load, timeout, prefetched)[1]


def _read_through(
    namespace: str, key: str, load: Callable[[], T | None], timeout: int, prefetched: Prefetched | None = None
) -> tuple[str | None, T | None]:
    """`cached`'s value with the version it is current for (None when the cache is down)."""
    version_key, item_key = _version_key(namespace), entry_key(namespace, key)
    if prefetched is not None and {version_key, item_key} <= prefetched.keys:
        found = prefetched.found
    else:
        found = cache.get_many([version_key, item_key])
    version, entry = found.get(version_key), found.get(item_key)
    if version is not None and isinstance(entry, tuple) and entry[0] == version:
        return version, entry[1]
    if version is None:
        version = secrets.token_hex(8)
        if not cache.add(version_key, version, timeout=None):
            version = cache.get(version_key)
    value = load()
    if value is not None and _cacheable(version):
        cache.set(item_key, (version, value), timeout=timeout)
    return version, value


# Rows this process has thawed, by (namespace, key): the version they are current for and their column values
# (secrets decrypted: they never leave the process). Emptied when full; a miss only costs the shared cache.
_LOCAL_ROWS: dict[tuple[str, str], tuple[str, tuple[Any, ...]]] = {}
LOCAL_ROWS_MAX = 512


def cached_instance(
    model: type[M],
    namespace: str,
    key: str,
    load: Callable[[], M | None],
    *,
    timeout: int = DEFAULT_TIMEOUT,
    prefetched: Prefetched | None = None,
) -> M | None:
    """A new instance of the row cached for `key` in `namespace` if still current, else of `load()`'s.

    The shared cache holds the row as `row_freeze` makes it (secrets encrypted). This process also keeps the
    row's thawed values with the version they were current for: while the namespace's version is unchanged,
    a lookup costs one cache read of the version, with no entry to unpickle and nothing to decrypt. Each call
    returns its own instance (mutable values copied), so a caller's changes never reach the next caller.
    `prefetched`: the namespace's version read in this request (`version_keys`), used instead of reading it.
    """
    local_key = (namespace, key)
    local = _LOCAL_ROWS.get(local_key)
    if local is not None:
        version_key = _version_key(namespace)
        if prefetched is not None and version_key in prefetched.keys:
            version = prefetched.found.get(version_key)
        else:
            version = cache.get(version_key)
        if version == local[0]:
            return _instance(model, local[1])

    def frozen() -> dict[str, Any] | None:
        instance = load()
        return row_freeze(instance) if instance is not None else None

    version, row = _read_through(namespace, key, frozen, timeout)
    if row is None:
        return None
    instance = row_thaw(model, row)
    if _cacheable(version):
        if len(_LOCAL_ROWS) >= LOCAL_ROWS_MAX:
            _LOCAL_ROWS.clear()
        values = tuple(_copy(getattr(instance, name)) for name in _attnames(model))
        _LOCAL_ROWS[local_key] = (version, values)
    return instance


def local_instance(model: type[M], namespace: str, key: str) -> tuple[str, str, M] | None:
    """The row this process keeps for `key` (`cached_instance`), not checked against the shared version:
    (the version's cache key, the version it was current for, a new instance); None when not kept."""
    local = _LOCAL_ROWS.get((namespace, key))
    if local is None:
        return None
    return _version_key(namespace), local[0], _instance(model, local[1])


_ATTNAMES: dict[type[models.Model], list[str]] = {}


def _attnames(model: type[models.Model]) -> list[str]:
    names = _ATTNAMES.get(model)
    if names is None:
        names = _ATTNAMES[model] = [field.attname for field in model._meta.concrete_fields]
    return names


def _copy(value: Any) -> Any:
    """Lists and dicts (JSON columns) copied; every other column value is immutable."""
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def _instance(model: type[M], values: tuple[Any, ...]) -> M:
    return model.from_db("default", _attnames(model), [_copy(value) for value in values])


def _bump_for(model: type[models.Model]) -> None:
    concrete = model._meta.concrete_model or model
    namespaces = _NAMESPACES.get(concrete)  # proxies (staff console pages) included
    if namespaces is not None:
        for namespace in namespaces():
            version_bump(namespace)


def _on_write(sender: type[models.Model], **_: Any) -> None:
    _bump_for(sender)


class VersionedQuerySet(models.QuerySet[Any]):
    """A QuerySet whose `update()` invalidates the model's cached namespaces (it sends no signal)."""

    def update(self, **kwargs: Any) -> int:
        rows = super().update(**kwargs)
        if rows:
            _bump_for(self.model)
        return rows


def bump_on_write(model: type[models.Model], namespaces: Callable[[], Iterable[str]]) -> None:
    """Invalidate `namespaces()` after every save, delete or queryset update of `model`.

    The model's default manager must be built on VersionedQuerySet for updates to count.
    """
    if not isinstance(model._default_manager.get_queryset(), VersionedQuerySet):
        raise TypeError(f"{model.__name__}'s manager must use VersionedQuerySet")
    _NAMESPACES[model] = namespaces
    # Per sender (the model and its proxies): a receiver for every model would cost every fast delete.
    for sender in apps.get_models():
        if sender._meta.concrete_model is model:
            label = sender._meta.label
            post_save.connect(_on_write, sender=sender, weak=False, dispatch_uid=f"versioned_cache:save:{label}")
            post_delete.connect(_on_write, sender=sender, weak=False, dispatch_uid=f"versioned_cache:delete:{label}")


def row_freeze(instance: models.Model) -> dict[str, Any]:
    """A model instance's column values for the cache, secrets still encrypted (Redis never holds them clear)."""
    row: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        row[field.attname] = field.get_prep_value(value) if isinstance(field, EncryptedTextField) else value
    return row


def row_thaw(model: type[M], row: dict[str, Any]) -> M:
    """The instance `row_freeze` stored, as if just loaded from the database."""
    values = [
        field.from_db_value(row[field.attname], None, None)
        if isinstance(field, EncryptedTextField)
        else row[field.attname]
        for field in model._meta.concrete_fields
    ]
    return model.from_db("default", [f.attname for f in model._meta.concrete_fields], values)
