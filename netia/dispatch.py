"""Queue background work by task name, so a services module never imports the tasks module that calls it.

A tasks module offers each task (`@dispatch.offered` above `@shared_task`); services queue it with
`enqueue_on_commit(name, ...)`, which publishes it once the caller's transaction commits, so a worker never
looks for rows that are not there yet. Every app imports its tasks module in `AppConfig.ready`, so the web
process, the worker and a shell all have the same registrations.

Publishing after commit never raises: the caller's work is committed already, so a broker outage must not
turn it into an error (a stored chat reply answered with a 500). A failed publish is logged and counted
(`netia_task_publish_failures_total`), and nothing is lost because every piece of queued work is also a
row a periodic sweep finds again (unanswered turns, unsent deliveries and emails).

Queues (`QUEUES`, consumed in this order by every worker: the Redis transport takes the first non-empty
one): `replies` for fresh visitor turns and their first delivery, `retries` for work coming back after a
failure, `background` for everything else (emails, reconciliation, billing).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import structlog
from django.db import transaction

from netia.metrics import TASK_PUBLISH_FAILURES

logger = structlog.get_logger(__name__)

REPLIES_QUEUE = "replies"
RETRIES_QUEUE = "retries"
BACKGROUND_QUEUE = "background"
QUEUES = (REPLIES_QUEUE, RETRIES_QUEUE, BACKGROUND_QUEUE)

# A publish waits for the broker at most this much (Celery's default retries for ~1 s more per try): a
# request must not hang on a dead broker; the sweeps queue the work again.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class _Task(Protocol):
    name: str
    app: Any

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
    name: str,
    *,
    countdown: float | None = None,
    queue: str | None = None,
    retry_policy: dict[str, float] | None = None,
    **kwargs: Any,
) -> None:
    """Publish the task registered as `name` now, with keyword arguments `kwargs` (raises if the broker fails).

    No countdown at all when it is 0 or None: an ETA task would wait for the worker's timer. `queue`
    overrides the task's route (CELERY_TASK_ROUTES).
    """
    task = _task(name)
    options: dict[str, Any] = {"retry_policy": PUBLISH_RETRY if retry_policy is None else retry_policy}
    if countdown:
        options["countdown"] = countdown
    if queue:
        options["queue"] = queue
    task.apply_async(kwargs=kwargs, **options)


def _runs_eagerly(name: str) -> bool:
    try:
        return bool(_task(name).app.conf.task_always_eager)
    except LookupError:
        return False


def enqueue_safely(name: str, **arguments: Any) -> bool:
    """`enqueue(name, **arguments)`, logging and counting a failure instead of raising; True if published."""
    try:
        enqueue(name, **arguments)
    except Exception as error:  # any broker or serialisation failure: the sweeps queue the work again
        if _runs_eagerly(name):  # without a broker the task ran here: this is its own failure, not a publish's
            logger.warning("task_failed_eagerly", task=name, error=type(error).__name__, detail=str(error)[:200])
            return False
        TASK_PUBLISH_FAILURES.labels(task=name).inc()
        logger.warning("task_publish_failed", task=name, error=type(error).__name__, detail=str(error)[:200])
        return False
    return True


def enqueue_on_commit(name: str, *, robust: bool = True, **arguments: Any) -> None:
    """`enqueue(name, **arguments)` once the current transaction commits (at once outside one); never raises.

    `robust` is accepted for callers written when it was optional: publishing after commit is always robust.
    """

    def publish() -> None:
        enqueue_safely(name, **arguments)

    transaction.on_commit(publish)
