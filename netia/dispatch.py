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

import base64
import json
import os
import socket
import uuid
from typing import Any, Protocol, TypeVar

import redis
import structlog
from celery import signals
from django.db import connection, transaction

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


# --- The cheap publish of a hot path (the webhook ack) ---------------------------------------------------------------
# Celery's own publish builds a Redis client, a router lookup and a full message (repr of the arguments,
# signals, a uuid per field) on every call: a third of the webhook ack's CPU. `enqueue_light` writes the
# same Celery protocol-2 message the Redis transport would (one LPUSH on the task's queue list, through one
# long-lived client per process) for tasks with keyword arguments only, no countdown and no result.
_light_client: redis.Redis | None = None
_light_routes: dict[str, tuple[str, list[Any], str]] = {}
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def _light_broker(name: str) -> tuple[redis.Redis, tuple[str, list[Any], str]] | None:
    """The long-lived Redis client and (queue, timelimit, origin) for `name`; None unless a Redis broker is live."""
    global _light_client
    task = _task(name)
    app = task.app
    if app.conf.task_always_eager or not str(app.conf.broker_url).startswith(("redis://", "rediss://")):
        return None
    route = _light_routes.get(name)
    if route is None:
        queue = app.amqp.router.route({}, name, (), {})["queue"].name
        timelimit = [getattr(task, "time_limit", None), getattr(task, "soft_time_limit", None)]
        route = _light_routes[name] = (queue, timelimit, f"gen{os.getpid()}@{socket.gethostname()}")
    if _light_client is None:  # redis-py's pool reconnects after a fork (it checks the pid)
        timeout = app.conf.broker_connection_timeout
        _light_client = redis.Redis.from_url(
            app.conf.broker_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    return _light_client, route


def enqueue_light(name: str, *, queue: str | None = None, **kwargs: Any) -> None:
    """`enqueue(name, **kwargs)` as one LPUSH of the Celery message on the task's queue (raises if Redis fails).

    `queue` overrides the task's route. Falls back to `enqueue` when tasks run eagerly or the broker is not
    Redis. Sends Celery's `after_task_publish` signal like a normal publish (only when something listens to it).
    """
    broker = _light_broker(name)
    if broker is None:
        enqueue(name, queue=queue, **kwargs)
        return
    _light_publish(name, broker, queue, kwargs)


def _light_publish(
    name: str, broker: tuple[redis.Redis, tuple[str, list[Any], str]], queue: str | None, kwargs: dict[str, Any]
) -> None:
    """One LPUSH of the Celery message running `name` with `kwargs`, on `queue` or else the task's route."""
    client, (route, timelimit, origin) = broker
    queue = queue or route
    task_id = str(uuid.uuid4())
    body = ((), kwargs, _EMBED)
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": timelimit,
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": repr(kwargs),
        "origin": origin,
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        "_schema_name": getattr(connection, "schema_name", "public"),  # as tenant_schemas_celery's send_task
    }
    message = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    client.lpush(queue, json.dumps(message))
    if signals.after_task_publish.receivers:
        signals.after_task_publish.send(sender=name, body=body, headers=headers, exchange="", routing_key=queue)


def enqueue_light_on_commit(name: str, **kwargs: Any) -> None:
    """`enqueue_light(name, **kwargs)` once the current transaction commits; never raises (as `enqueue_on_commit`)."""

    def publish() -> None:
        broker = _light_broker(name)
        if broker is None:
            enqueue_safely(name, **kwargs)
            return
        try:
            _light_publish(name, broker, None, kwargs)
        except Exception as error:  # the sweeps queue the work again
            TASK_PUBLISH_FAILURES.labels(task=name).inc()
            logger.warning("task_publish_failed", task=name, error=type(error).__name__, detail=str(error)[:200])

    transaction.on_commit(publish)
