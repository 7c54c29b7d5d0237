"""The fault drill: Netia under the failures it is built for, on real PostgreSQL, Redis and Celery workers.

1. 1,000 Papercups webhooks (10% of them duplicates) for 150 conversations, while Papercups answers 20% of
   calls with a 5xx and the LLM times out on 10% of requests; one Celery worker is SIGKILLed mid-way (its
   unacknowledged tasks die with it) and Redis is restarted once without persistence (every queued task is
   lost). Then: every visitor message is answered, each answer is in Papercups exactly once, none is lost
   and none doubled.
2. PostgreSQL restarted under chat API traffic: the requests after it succeed.

Redis, the PostgreSQL of part 2 and the workers are private to this test (tests/drill/servers.py); part 1's
database is the test database, never restarted. The figures are printed (`pytest -m drill -s`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django_tenants.utils import tenant_context

from billing.models import BillingAccount, Plan
from chat.models import Message
from netia import dispatch
from netia.celery import app as celery_app
from tests import processes
from tests.drill.servers import PrivatePostgres, PrivateRedis, WebServer, Worker, free_port, wait_for
from tests.fakes.base import Reply
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.papercups_server import FakePapercups
from tests.webhooks.live.conftest import connect, disconnect
from webhooks.models import FailedDelivery, InboundEvent
from webhooks.services.queueing import RECONCILE_TENANT_TASK

pytestmark = [
    pytest.mark.drill,
    pytest.mark.skipif(not PrivatePostgres.available(), reason="needs Debian's PostgreSQL 15 server binaries"),
]
ROOT = Path(__file__).resolve().parents[2]
CONVERSATIONS = 150
WEBHOOKS = 1000
DUPLICATES = 100
QUIET = 0.5
EVENTS_SWEEP_TASK = "webhooks.tasks.inbound_events_sweep"


def _worker_env(redis: PrivateRedis, openai: FakeOpenAI, papercups: FakePapercups) -> dict[str, str]:
    url = os.environ.get("DATABASE_URL", "")
    return {
        **os.environ,
        "DATABASE_URL": f"{url.rpartition('/')[0]}/{connection.settings_dict['NAME']}",
        "REDIS_URL": redis.url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": "15",
        "OPENAI_API_KEY": "sk-drill",
        "OPENAI_BASE_URL": f"{openai.url}/v1",
        "OPENAI_TIMEOUT": "0.5",
        "OPENAI_MAX_RETRIES": "0",
        "PAPERCUPS_QUIET_PERIOD_SECONDS": str(QUIET),
        "PAPERCUPS_RETRY_BASE_SECONDS": "0.2",
        "PAPERCUPS_RETRY_MAX_SECONDS": "1.5",
        "PAPERCUPS_TIMEOUT_SECONDS": "5",
        "PAPERCUPS_SWEEP_GRACE_SECONDS": "4",
        "PAPERCUPS_RECONCILE_WINDOW_SECONDS": "30",
        "NETIA_OUTBOUND_ALLOWED_HOSTS": papercups.url.removeprefix("http://"),
        "LOG_LEVEL": "WARNING",
    }


def _point_celery_at(broker_url: str, eager: bool) -> None:
    """This process publishes (webhooks, the sweep) to `broker_url`; pools are rebuilt from it on next use."""
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = broker_url, eager
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def drill_env(db: None, settings: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    redis = PrivateRedis()
    redis.start()
    saved_broker = celery_app.conf.broker_url
    _point_celery_at(redis.url, eager=False)
    papercups, openai = FakePapercups(), FakeOpenAI()
    papercups.start()
    openai.start()
    settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [papercups.url.removeprefix("http://")]
    workers: list[Worker] = []
    web: list[WebServer] = []
    try:
        yield {
            "redis": redis,
            "papercups": papercups,
            "openai": openai,
            "workers": workers,
            "web": web,
            "tmp": tmp_path,
        }
    finally:
        for worker in workers:
            worker.stop()
        for server in web:
            server.stop()
        papercups.stop()
        openai.stop()
        _point_celery_at(saved_broker, eager=True)
        redis.kill()


def test_1000_webhooks_through_papercups_errors_llm_timeouts_a_killed_worker_and_a_redis_restart(drill_env):
    redis, papercups, openai = drill_env["redis"], drill_env["papercups"], drill_env["openai"]
    tenant, account, _ = connect(papercups, scope=None, company="Drill", register=False)
    unlimited = Plan.objects.create(code="drill", name="Drill (unlimited)")  # no AI-reply limit to reach
    BillingAccount.objects.filter(tenant=tenant).update(plan=unlimited)
    started = time.monotonic()
    try:
        env = _worker_env(redis, openai, papercups)
        web = WebServer(env, drill_env["tmp"] / "web.log", workers=2, threads=4)
        drill_env["web"].append(web)
        workers: list[Worker] = drill_env["workers"]
        workers += [Worker(f"drill{n}", env, drill_env["tmp"] / f"worker{n}.log") for n in (1, 2)]
        url = f"{web.url}/papercups/webhook?token={tenant.webhook_secret}"
        wait_for(lambda: _get(f"{web.url}/api/v1/health") == 200, 60, "the web server")
        for worker in workers:
            worker.wait_ready()
        queues = celery_app.control.inspect(timeout=3).active_queues() or {}
        consumed = sorted(sorted(q["name"] for q in worker_queues) for worker_queues in queues.values())
        assert consumed == [["background", "replies", "retries"]] * 2  # started as `make worker`: every queue
        papercups.inject_random_fault(
            "POST", "/api/v1/messages", rate=0.2, reply=Reply(502, {"errors": {"detail": "Bad Gateway"}}), seed=1
        )
        papercups.inject_random_fault(
            "GET", "/api/v1/conversations", rate=0.2, reply=Reply(503, {"errors": {"detail": "Unavailable"}}), seed=2
        )
        openai.inject_random_fault("POST", "/v1/chat/completions", rate=0.1, delay=1.5, seed=3)

        # Visitors write (in the simulator; no webhook is registered there: the drill posts them itself).
        rng = random.Random(7)
        conversations = [papercups.start_conversation(account, f"v{n}@drill.test") for n in range(CONVERSATIONS)]
        unique = WEBHOOKS - DUPLICATES
        payloads = []
        for number in range(unique):  # a few messages in a row per conversation: bursts, as visitors type
            conversation = conversations[number * CONVERSATIONS // unique]
            payloads.append(papercups.visitor_says(account, conversation["id"], f"Do you ship to Canada? ({number})"))
        events = list(payloads)
        for original in rng.sample(range(unique), DUPLICATES):  # each duplicate some time after its original
            events.insert(rng.randint(original + 1, len(events)), payloads[original])

        stop_sweeping = threading.Event()

        def sweep() -> None:  # what Celery beat does: the reconciliation and the inbound-events sweep
            while not stop_sweeping.wait(3.0):
                with contextlib.suppress(Exception):  # Redis may be restarting: the next round queues it
                    dispatch.enqueue(RECONCILE_TENANT_TASK, tenant_id=tenant.pk, channel="papercups")
                    celery_app.send_task(EVENTS_SWEEP_TASK)

        ready = time.monotonic()
        sweeper = threading.Thread(target=sweep, daemon=True)
        sweeper.start()
        statuses: list[int] = []

        def post(payload: dict[str, Any]) -> None:
            try:
                response = requests.post(url, json={"event": "message:created", "payload": payload}, timeout=10)
                statuses.append(response.status_code)
            except requests.RequestException:
                statuses.append(0)

        exits: list[str] = []

        def supervise() -> None:
            """What the deployment does (docker-compose's `restart: unless-stopped`): a worker that exits is
            started again. kombu's Redis transport makes a worker holding unacknowledged tasks exit when the
            broker goes away ("Unrecoverable error" while restoring them), so the Redis restart needs this too."""
            while not stop_sweeping.wait(0.5):
                for position, worker in enumerate(list(workers)):
                    if worker.process.poll() is not None:
                        exits.append(worker.name)
                        worker.stop()
                        workers[position] = Worker(f"{worker.name}r", env, drill_env["tmp"] / f"{worker.name}r.log")

        supervisor = threading.Thread(target=supervise, daemon=True)
        supervisor.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for index, payload in enumerate(events):
                pool.submit(post, payload)
                if index == WEBHOOKS * 4 // 10:
                    workers[0].kill()  # mid-way, with tasks in flight (the supervisor starts another)
                if index == WEBHOOKS * 7 // 10:
                    pool.submit(redis.restart)
        posted = time.monotonic()

        def settled() -> bool:
            with tenant_context(tenant):
                unanswered = Message.objects.filter(role="visitor", answered_by__isnull=True).count()
                unsent = Message.objects.filter(role="bot", delivery_status__in=["pending", "sending"]).count()
            unprocessed = InboundEvent.objects.filter(tenant=tenant, processed_at__isnull=True).count()
            return unanswered == 0 and unsent == 0 and unprocessed == 0

        wait_for(settled, timeout=300, what="every turn answered and delivered")
        stop_sweeping.set()
        sweeper.join(10)
        supervisor.join(10)
        drained = time.monotonic()

        with tenant_context(tenant):
            visitors = list(Message.objects.filter(role="visitor"))
            bots = {m.pk: m for m in Message.objects.filter(role="bot")}
        in_papercups = [m for c in conversations for m in papercups.messages(c["id"]) if m["user_id"] == account.bot.id]
        netia_ids = [m["metadata"]["netia_message_id"] for m in in_papercups]
        figures = {
            "webhooks": len(events),
            "duplicates": DUPLICATES,
            "visitor_messages": len(visitors),
            "turns_answered": len(bots),
            "replies_in_papercups": len(in_papercups),
            "reply_posts_to_papercups": len(papercups.requests_to("POST", "/api/v1/messages")),
            "delivery_attempts": sum(b.delivery_attempts for b in bots.values()),
            "llm_requests": len(openai.requests_to("POST", "/v1/chat/completions")),
            "papercups_5xx_injected": papercups.random_faults_taken,
            "llm_timeouts_injected": openai.random_faults_taken,
            "workers_killed": 1,
            "worker_exits_restarted": exits,
            "redis_restarts": redis.restarts,
            "webhook_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
            "seconds_to_start_servers": round(ready - started, 1),
            "seconds_to_post_webhooks": round(posted - ready, 1),
            "seconds_until_all_answered_and_delivered": round(drained - ready, 1),
        }
        print("\nfault drill:", json.dumps(figures))

        assert len(visitors) == unique  # each message stored once, duplicates and reconciliation included
        assert all(v.answered_by_id in bots for v in visitors)  # every turn answered ...
        assert all(b.delivery_status == "sent" for b in bots.values())  # ... and delivered ...
        assert sorted(netia_ids) == sorted(str(b.public_id) for b in bots.values())  # ... exactly once
        assert len(set(netia_ids)) == len(netia_ids)
        assert not FailedDelivery.objects.filter(tenant=tenant).exists()
        assert papercups.random_faults_taken > 0
        assert openai.random_faults_taken > 0
    finally:
        disconnect(tenant)
        unlimited.delete()


def test_a_postgresql_restart_during_chat_api_traffic(db, tenant, tmp_path):
    """The chat API served by its own process on a private PostgreSQL cluster (a copy of the test database's
    public schema and tenant A's), restarted under traffic: every request after the restart succeeds."""
    postgres = PrivatePostgres()
    postgres.start()
    server = None
    try:
        source = f"{os.environ.get('DATABASE_URL', '').rpartition('/')[0]}/{connection.settings_dict['NAME']}"
        postgres.load(source_url=source, schemas=["public", tenant.schema_name])
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url(),
            "REDIS_URL": "",
            "CHAT_RATE_PER_TOKEN": "100000/m",
            "CHAT_RATE_PER_IP": "100000/m",
            "LOG_LEVEL": "WARNING",
        }
        log = (tmp_path / "server.log").open("wb")
        server = processes.spawn(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get(f"{base}/api/v1/health") == 200, 60, "the chat API server")

        def chat(n: int) -> int:
            try:
                return requests.post(
                    f"{base}/api/v1/chat",
                    json={"session_id": f"drill-{n}", "message": f"Do you ship to Canada? ({n})"},
                    headers={"Authorization": f"Bearer {tenant.chat_token}"},
                    timeout=10,
                ).status_code
            except requests.RequestException:
                return 0

        during: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            n = 0
            while not stop.is_set():
                during.append(chat(n))
                n += 1

        before = [chat(n) for n in range(10)]
        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        time.sleep(0.5)
        restart_started = time.monotonic()
        postgres.restart()
        restart_seconds = time.monotonic() - restart_started
        time.sleep(0.5)
        stop.set()
        sender.join(15)
        after = [chat(n) for n in range(100, 130)]
        print(
            f"\npostgresql restart ({restart_seconds:.2f} s) under chat API traffic: before {before.count(200)}/10 ok, "
            f"during {during.count(200)}/{len(during)} ok, after {after.count(200)}/30 ok"
        )

        assert before == [200] * 10
        assert during  # traffic was flowing while PostgreSQL restarted
        assert after == [200] * 30
    finally:
        if server is not None:
            processes.stop(server, timeout=10)
        postgres.stop()


def _get(url: str) -> int:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0
