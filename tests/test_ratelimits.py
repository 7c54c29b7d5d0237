"""Rate limits counted together (`netia.ratelimits.enforce_all`, one Redis round trip) count exactly what
django-ratelimit counts, on its keys, and stop where `enforce` one after the other would."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django_ratelimit.core import get_usage

from netia import ratelimits
from netia.errors import RateLimited


def _fixed(value: str) -> ratelimits.KeyFn:
    return lambda group, request: value


def _count(request, group: str, value: str, rate: str) -> int:
    usage = get_usage(request, group=group, key=_fixed(value), rate=rate, increment=False)
    return usage["count"]


def test_limits_counted_together_are_django_ratelimits_counters():
    request = RequestFactory().post("/api/v1/chat")
    limits = [("t:ip", _fixed("1.2.3.4"), "10/m"), ("t:token", _fixed("abc"), "10/h")]

    for _ in range(3):
        ratelimits.enforce_all(request, limits)
    # django-ratelimit counts on from where they left off: the same keys, one counter each.
    get_usage(request, group="t:ip", key=_fixed("1.2.3.4"), rate="10/m", increment=True)

    assert (_count(request, "t:ip", "1.2.3.4", "10/m"), _count(request, "t:token", "abc", "10/h")) == (4, 3)


def test_the_first_limit_exceeded_raises_and_the_later_ones_are_not_counted():
    request = RequestFactory().post("/api/v1/chat")
    limits = [("t:ip", _fixed("5.6.7.8"), "2/m"), ("t:token", _fixed("xyz"), "100/m")]
    ratelimits.enforce_all(request, limits)
    ratelimits.enforce_all(request, limits)

    with pytest.raises(RateLimited) as raised:
        ratelimits.enforce_all(request, limits)

    assert raised.value.extra["limit"] == 2
    assert 1 <= raised.value.extra["retry_after"] <= 60
    assert (_count(request, "t:ip", "5.6.7.8", "2/m"), _count(request, "t:token", "xyz", "100/m")) == (3, 2)


def test_a_counter_expires_with_its_window():
    request = RequestFactory().post("/api/v1/chat")
    ratelimits.enforce_all(request, [("t:ttl", _fixed("k"), "5/m")])

    keys = [key for key in cache.keys("rl:*")] if hasattr(cache, "keys") else []
    if not keys:
        pytest.skip("the cache is not Redis (REDIS_URL unset): django-ratelimit counts itself")
    # The window plus django-ratelimit's fudge (`ttl` is django-redis').
    assert all(0 < cache.ttl(key) <= 60 + 5 for key in keys)  # type: ignore[attr-defined]


def test_what_the_limits_round_trip_reads_is_what_get_many_reads(settings):
    request = RequestFactory().post("/api/v1/chat")
    cache.set_many({"r:int": 7, "r:dict": {"a": [1, "b"]}, "r:text": "é"})
    keys = ["r:int", "r:dict", "r:missing", "r:text"]

    found = ratelimits.enforce_all(request, [("t:read", _fixed("k"), "5/m")], read=keys)
    counted = _count(request, "t:read", "k", "5/m")
    settings.RATELIMIT_ENABLE = False
    found_unlimited = ratelimits.enforce_all(request, [("t:read", _fixed("k"), "5/m")], read=keys)

    assert found == found_unlimited == cache.get_many(keys) == {"r:int": 7, "r:dict": {"a": [1, "b"]}, "r:text": "é"}
    assert counted == 1


def test_a_limit_exceeded_raises_before_anything_read_is_used():
    request = RequestFactory().post("/api/v1/chat")
    limits = [("t:over", _fixed("k"), "1/m")]
    ratelimits.enforce_all(request, limits, read=["r:any"])

    with pytest.raises(RateLimited):
        ratelimits.enforce_all(request, limits, read=["r:any"])

    assert _count(request, "t:over", "k", "1/m") == 2


def test_guarded_limits_count_only_while_the_guard_key_holds_its_value():
    if not hasattr(cache, "client"):
        pytest.skip("the cache is not Redis (REDIS_URL unset): the caller counts guarded limits itself")
    request = RequestFactory().post("/api/v1/chat")
    cache.set("r:version", "v1")
    limits = [("t:ip", _fixed("g"), "10/m")]

    def guard(value: str) -> ratelimits.Guard:
        return ratelimits.Guard(key="r:version", value=value, limits=[("t:cap", _fixed("g"), "1/h")])

    matched, stale, over = guard("v1"), guard("v0"), guard("v1")
    ratelimits.enforce_all(request, limits, guard=matched)
    ratelimits.enforce_all(request, limits, guard=stale)
    found = ratelimits.enforce_all(request, limits, read=["r:version"], guard=over)

    assert [(g.counted, g.exceeded is not None) for g in (matched, stale, over)] == [
        (True, False),
        (False, False),
        (True, True),
    ]
    assert getattr(over.exceeded, "extra", None) == {"limit": 1, "retry_after": over.exceeded.extra["retry_after"]}
    assert found == {}  # the script stopped at the exceeded limit
    assert (_count(request, "t:ip", "g", "10/m"), _count(request, "t:cap", "g", "1/h")) == (3, 2)


def test_a_guards_reads_are_read_only_when_its_limits_are_counted():
    if not hasattr(cache, "client"):
        pytest.skip("the cache is not Redis (REDIS_URL unset): the caller counts guarded limits itself")
    request = RequestFactory().post("/api/v1/chat")
    cache.set_many({"r:version": "v1", "r:always": 1, "r:turn": 2})
    limits = [("t:ip", _fixed("reads"), "10/m")]

    def guard(value: str) -> ratelimits.Guard:
        return ratelimits.Guard(
            key="r:version", value=value, limits=[("t:cap", _fixed("reads"), "9/h")], read=["r:turn"]
        )

    matched, stale = guard("v1"), guard("v0")
    with_guard = ratelimits.enforce_all(request, limits, read=["r:always"], guard=matched)
    without = ratelimits.enforce_all(request, limits, read=["r:always"], guard=stale)

    assert (matched.counted, stale.counted) == (True, False)
    assert with_guard == {"r:always": 1, "r:turn": 2}
    assert without == {"r:always": 1}


@pytest.mark.parametrize(
    "value", [7, -3, "version-a1b2", ("v1", {"field": "x" * 2000}), {"nested": [1, 2.5, None]}, b"raw"]
)
def test_values_read_with_the_limits_are_decoded_as_django_redis_decodes_them(value):
    if not hasattr(cache, "client"):
        pytest.skip("the cache is not Redis (REDIS_URL unset)")
    cache.set("decoded", value)
    stored = cache.client.get_client().get(cache.make_key("decoded"))

    assert ratelimits._decoded(cache.client, stored) == cache.client.decode(stored) == value
