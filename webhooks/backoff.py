"""Retry timing for the channels: exponential backoff, and the jitter every wait gets (one place for both)."""

from __future__ import annotations

import random

from django.conf import settings


def jitter(seconds: float) -> float:
    """A random 50-100 % of `seconds`, so retries of many conversations do not arrive together."""
    return seconds * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped at the maximum, then jittered (seconds)."""
    ceiling = min(
        settings.PAPERCUPS_RETRY_MAX_SECONDS, settings.PAPERCUPS_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1)
    )
    return jitter(ceiling)


def retry_delay_since(waited: float) -> float:
    """Backoff for work retried by elapsed time rather than by attempt: as long as it waited so far, clamped
    between the base and the maximum, jittered (seconds)."""
    return jitter(min(settings.PAPERCUPS_RETRY_MAX_SECONDS, max(settings.PAPERCUPS_RETRY_BASE_SECONDS, waited)))
