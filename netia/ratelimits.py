"""Rate limits on the shared cache (django-ratelimit), raised as our own 429 with an exact Retry-After.

On Redis (django-redis), the limits a request checks together are counted in one round trip (a Lua script)
with django-ratelimit's own keys, windows and expiry, so both count the same requests; on any other cache
(local development) django-ratelimit counts them. The same round trip can read cache entries the request needs
next (`read`), so a limit costs no round trip of its own.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.http import HttpRequest
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate, get_usage
from django_redis.exceptions import CompressorError
from redis.exceptions import RedisError

from netia.errors import RateLimited
from netia.proxies import client_ip_get

logger = structlog.get_logger(__name__)

KeyFn = Callable[[str, HttpRequest], str]
# (group, key, rate), as django-ratelimit's get_usage takes them.
Limit = tuple[str, KeyFn, str]

# KEYS: the limits' counters, the guarded limits' counters, the guard's key (with guarded limits), keys to read,
# keys to read only with the guarded limits counted.
# ARGV: (expiry, limit) per counter, then the number of limits, of guarded limits, the guard's value and the
# number of keys read only with the guarded limits.
# Counts each counter in order as django-ratelimit does (created at 1 with the window's expiry, else +1), the
# guarded ones only while the guard's key holds the guard's value, and stops at the first one over its limit:
# {its index from 1, its count}; else {0, 0, 1 if the guarded ones were counted else 0, the values read (MGET)}.
_COUNT_SCRIPT = """
local limits, guarded, guard = tonumber(ARGV[#ARGV - 3]), tonumber(ARGV[#ARGV - 2]), ARGV[#ARGV - 1]
local read_to = #KEYS - tonumber(ARGV[#ARGV])
local function over(first, last)
  for i = first, last do
    local count = redis.call('INCR', KEYS[i])
    if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i - 1]) end
    if count > tonumber(ARGV[2 * i]) then return {i, count} end
  end
end
local exceeded = over(1, limits)
if exceeded then return exceeded end
local counted, read_from = 0, limits + 1
if guarded > 0 then
  read_from = limits + guarded + 2
  if redis.call('GET', KEYS[limits + guarded + 1]) == guard then
    counted = 1
    exceeded = over(limits + 1, limits + guarded)
    if exceeded then return exceeded end
  end
end
if counted == 1 then read_to = #KEYS end
if read_to >= read_from then return {0, 0, counted, redis.call('MGET', unpack(KEYS, read_from, read_to))} end
return {0, 0, counted}
"""
_script: Any = None  # redis-py's Script (EVALSHA, loaded again when the server lost it), made once


@dataclass
class Guard:
    """Limits counted only while a key of the default cache holds `value` (e.g. the version a cached row was
    current for: counted only for the row still current), with the other limits in their round trip.

    After `enforce_all`: `counted` says whether they were, `exceeded` holds the RateLimited one of them raised:
    the caller raises it when its own checks come to that limit (`enforce_all` raises only the other limits');
    `failed_open` says the round trip failed and the limits failed open (RATELIMIT_FAIL_OPEN): the script may
    have run (a reply lost to a timeout), so the caller must not count the guarded limits again."""

    key: str
    value: Any
    limits: list[Limit]
    read: list[str] = field(default_factory=list)  # keys read (with `enforce_all`'s) only when they are counted
    counted: bool = False
    exceeded: RateLimited | None = None
    failed_open: bool = False


def client_ip(group: str, request: HttpRequest) -> str:
    """The client's address: the peer, or the forwarded one behind NETIA_TRUSTED_PROXIES (netia.proxies)."""
    return client_ip_get(request)


def bearer_token(group: str, request: HttpRequest) -> str:
    """A digest of the presented bearer credential (never the credential itself in cache keys)."""
    return hashlib.sha256(request.META.get("HTTP_AUTHORIZATION", "").encode()).hexdigest()


def enforce(request: HttpRequest, *, group: str, key: KeyFn, rate: str) -> None:
    """Count this request against `rate` for its key; raise RateLimited once over the limit."""
    enforce_all(request, [(group, key, rate)])


def enforce_all(
    request: HttpRequest, limits: list[Limit], *, read: Sequence[str] = (), guard: Guard | None = None
) -> dict[str, Any]:
    """Count this request against each limit in order, as `enforce` would one after the other (the limits
    after one that is exceeded are not counted), in one cache round trip on Redis; raise RateLimited.

    `read`: keys of the default cache to read too (in the same round trip when the limits are counted on it);
    what `cache.get_many(read)` would return, except nothing ({}) when the round trip failed (the cache down,
    a reply lost) and when a guarded limit is exceeded (the script stops there).
    `guard`: limits counted after `limits` if its key holds its value, in the same round trip on Redis with
    the default cache (else not counted: the caller counts them its own way); its `read` keys are read (and
    returned) only when they are counted.
    """
    alias = getattr(settings, "RATELIMIT_USE_CACHE", DEFAULT_CACHE_ALIAS)
    if read and alias != DEFAULT_CACHE_ALIAS:  # the reads cannot share the limits' round trip
        enforce_all(request, limits)
        return caches[DEFAULT_CACHE_ALIAS].get_many(read)
    cache = caches[alias]
    if not getattr(settings, "RATELIMIT_ENABLE", True) or not limits:
        return cache.get_many(read) if read else {}
    get_client = getattr(getattr(cache, "client", None), "get_client", None)
    if get_client is None:  # not django-redis
        for group, key, rate in limits:
            usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
            if usage and usage["should_limit"]:
                raise RateLimited(extra={"limit": usage["limit"], "retry_after": max(1, int(usage["time_left"]))})
        return cache.get_many(read) if read else {}
    counters = list(limits)
    guarded = guard.limits if guard is not None and alias == DEFAULT_CACHE_ALIAS else []
    keys, args, windows = [], [], []
    for group, key, rate in counters + guarded:
        limit, period = _split_rate(rate)
        value = key(group, request)
        window = _get_window(value, period)
        keys.append(cache.make_key(_make_cache_key(group, window, rate, value, ALL)))
        args += [period + EXPIRATION_FUDGE, limit]
        windows.append((limit, window))
    client = cache.client  # type: ignore[attr-defined]  # django-redis'
    names = list(read)
    if guarded:
        assert guard is not None  # noqa: S101 - for mypy
        keys.append(cache.make_key(guard.key))
        names += guard.read
        encoded = client.encode(guard.value)
        args += [len(counters), len(guarded), encoded, len(guard.read)]
    else:
        args += [len(counters), 0, "", 0]
    global _script
    try:
        connection = get_client(write=True)
        if _script is None:
            _script = connection.register_script(_COUNT_SCRIPT)
        over, _, *rest = _script(keys=keys + [cache.make_key(name) for name in names], args=args, client=connection)
    except (RedisError, OSError):  # the cache is down: as django-ratelimit does
        logger.warning("rate_limit_cache_unavailable", exc_info=True)
        if getattr(settings, "RATELIMIT_FAIL_OPEN", False):
            if guard is not None:
                guard.failed_open = True
            return {}
        raise RateLimited(extra={"limit": 0, "retry_after": 1}) from None
    if over:
        limit, window = windows[int(over) - 1]
        exceeded = RateLimited(extra={"limit": limit, "retry_after": max(1, window - int(time.time()))})
        if int(over) <= len(counters):
            raise exceeded
        assert guard is not None  # noqa: S101 - only guarded limits come after the others
        guard.counted, guard.exceeded = True, exceeded
        return {}
    if guard is not None:
        guard.counted = bool(rest[0])
    values = rest[1] if len(rest) > 1 else []
    names = names if guard is not None and guard.counted else list(read)
    return {name: _decoded(client, value) for name, value in zip(names, values, strict=True) if value is not None}


def _decoded(client: Any, value: bytes) -> Any:
    """django-redis' `client.decode(value)`, without its first step for a pickle: `int(value)`, whose ValueError
    quotes the whole value (a cached row: a kilobyte formatted and dropped). A pickle starts with its PROTO
    opcode, a byte that no text `int()` accepts, so for it that step always fails."""
    if value[:1] != b"\x80":
        return client.decode(value)
    with suppress(CompressorError):  # small values are stored uncompressed, as in `decode`
        value = client._compressor.decompress(value)
    return client._serializer.loads(value)
