"""Queue background work by task name, so a services module never imports the tasks module that calls it.

A tasks module offers each task (`@dispatch.offered` above `@shared_task`); services queue it with
`enqueue_on_commit(name, ...)`, which publishes it once the caller's transaction commits, so a worker never
looks for rows that are not there yet. Every app imports its tasks module in `AppConfig.ready`, so the web
process, the worker and a shell all have the same registrations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from django.db import transaction


class _Task(Protocol):
    name: str

    def apply_async(self, *, kwargs: dict[str, Any], **options: Any) -> Any: ...


T = TypeVar("T", bound=_Task)

# Celery's shared tasks are lazy proxies: their names are read at the first enqueue, not at import.
_OFFERED: list[_Task] = []
_TASKS: dict[str, _Task] = {}


def offered(task: T) -> T:
    """Register a Celery task under its name (a decorator placed above `@shared_task`)."""
    _OFFERED.append(task)
    _TASKS.clear()
    return task


def _task(name: str) -> _Task:
    if not _TASKS:
        _TASKS.update((task.name, task) for task in _OFFERED)
    try:
        return _TASKS[name]
    except KeyError:
        raise LookupError(f"No task offered as {name!r}: does its app's ready() import its tasks module?") from None


def enqueue(
    name: str, *, countdown: float | None = None, retry_policy: dict[str, float] | None = None, **kwargs: Any
) -> None:
    """Publish the task registered as `name` now, with keyword arguments `kwargs`.

    No countdown at all when it is 0 or None: an ETA task would wait for the worker's timer.
    """
    task = _task(name)
    options: dict[str, Any] = {}
    if countdown:
        options["countdown"] = countdown
    if retry_policy is not None:
        options["retry_policy"] = retry_policy
    task.apply_async(kwargs=kwargs, **options)


def enqueue_on_commit(name: str, *, robust: bool = False, **arguments: Any) -> None:
    """`enqueue(name, **arguments)` once the current transaction commits (at once outside one).

    `robust`: a failure to publish is logged by Django instead of raised (the caller's work is committed
    already; a periodic sweep queues it again).
    """
    callback: Callable[[], None] = lambda: enqueue(name, **arguments)  # noqa: E731
    transaction.on_commit(callback, robust=robust)
