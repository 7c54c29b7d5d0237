"""The webhook ack's light publish (`dispatch.enqueue_light`): the message Celery's own publish writes, in one LPUSH."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.signals import after_task_publish

from netia import dispatch
from netia.celery import app as celery_app

TASK = "webhooks.tasks.inbound_event_process"
QUEUE = "test-dispatch-light"  # no worker reads it


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The Redis broker, with tasks published (not run eagerly) for the test's length."""
    url = str(celery_app.conf.broker_url)
    if not url.startswith("redis://"):
        pytest.skip("the light publish needs a Redis broker (set REDIS_URL)")
    client = redis.Redis.from_url(url)
    client.delete(QUEUE)
    celery_app.conf.task_always_eager = False
    try:
        yield client
    finally:
        celery_app.conf.task_always_eager = True
        client.delete(QUEUE)


def _pop(client: redis.Redis) -> dict[str, Any]:
    raw = client.rpop(QUEUE)
    assert isinstance(raw, bytes), "nothing was published"
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_the_light_publish_writes_the_message_celery_writes(broker: redis.Redis) -> None:
    dispatch.enqueue(TASK, queue=QUEUE, event_id=41)
    celery_message = _pop(broker)
    published: list[dict[str, Any]] = []

    def seen(sender: Any = None, **kwargs: Any) -> None:
        published.append({"sender": sender, **kwargs})

    after_task_publish.connect(seen, weak=False)
    try:
        dispatch.enqueue_light(TASK, queue=QUEUE, event_id=41)
    finally:
        after_task_publish.disconnect(seen)
    light_message = _pop(broker)
    assert broker.llen(QUEUE) == 0

    per_message = {"id", "root_id", "origin"}
    assert light_message["headers"]["id"] == light_message["headers"]["root_id"]
    assert {k: v for k, v in light_message["headers"].items() if k not in per_message} == {
        k: v for k, v in celery_message["headers"].items() if k not in per_message
    }
    assert light_message["headers"]["timelimit"] == [90, 60]  # the task's own limits
    per_publish = {"correlation_id", "reply_to", "delivery_tag"}
    assert {k: v for k, v in light_message["properties"].items() if k not in per_publish} == {
        k: v for k, v in celery_message["properties"].items() if k not in per_publish
    }
    assert light_message["properties"]["correlation_id"] == light_message["headers"]["id"]
    rest = {k: v for k, v in light_message.items() if k not in {"headers", "properties"}}
    assert rest == {k: v for k, v in celery_message.items() if k not in {"headers", "properties"}}
    assert light_message["body"] == [[], {"event_id": 41}, dispatch._EMBED]
    # Whoever counts published tasks (the live tests' worker fixture) sees this one too.
    assert [(p["sender"], p["routing_key"], p["headers"]["id"]) for p in published] == [
        (TASK, QUEUE, light_message["headers"]["id"])
    ]


def test_the_light_publish_falls_back_to_celery_when_tasks_run_eagerly() -> None:
    """Without a broker (tests, `CELERY_TASK_ALWAYS_EAGER`) the task runs here, as with `enqueue`."""
    assert celery_app.conf.task_always_eager
    assert dispatch._light_broker(TASK) is None
