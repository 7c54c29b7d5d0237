"""Channel test fixtures: the Papercups simulator and helpers (end-to-end fixtures are in live/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.papercups_server import FakePapercups

SHIPPING = "We ship to Canada in 3 to 5 business days for 12 dollars."


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def papercups(settings: Any) -> Iterator[FakePapercups]:
    """The Papercups simulator on 127.0.0.1, allow-listed for Netia's outbound calls (netia.outbound)."""
    with FakePapercups() as fake:
        settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [fake.url.removeprefix("http://")]
        yield fake
