"""Papercups webhooks: acknowledgement throughput and latency under gunicorn vs a bare DRF view, and
webhook-to-reply-posted latency through a real Celery worker.

Writes benchmarks/results/webhooks.json. Uses its own database (netia_bench_webhooks) and needs Redis
(REDIS_URL: the webhook path enqueues to the broker, and a worker process answers). Papercups is the test
simulator (real HTTP both ways) and the LLM a local fake answering instantly; the quiet period is set to 0
so the latency is Netia's own (webhook in, reply generated, reply posted).

    python -m benchmarks.bench_webhooks [--requests 2000] [--concurrency 4] [--replies 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._django import percentile, setup

RESULTS = Path(__file__).parent / "results" / "webhooks.json"
ROOT = Path(__file__).resolve().parent.parent
PORT = 8766
ACCOUNT_ID = "5d0c7e8a-2b1f-4c3d-9e8f-7a6b5c4d3e2f"
WORKER_COMMAND = [sys.executable, "-m", "celery", "-A", "netia", "worker", "--pool=prefork", "--concurrency=1"]
SHIPPING = "We ship to Canada in 3 to 5 business days for 12 dollars."


def _tenant() -> Any:
    from tenants.models import Tenant
    from webhooks.services import papercups_tenant_onboard

    tenant = Tenant.objects.filter(papercups_account_id=ACCOUNT_ID).first()
    if tenant is None:
        tenant = papercups_tenant_onboard(
            name="Bench Webhooks", owner_email="bench-webhooks@bench.test", papercups_account_id=ACCOUNT_ID
        ).tenant
        from django_tenants.utils import tenant_context

        from chat.services import knowledge_article_create

        with tenant_context(tenant):
            knowledge_article_create(tenant=tenant, title="Shipping", content=SHIPPING)
    return tenant


def _message_event(i: int, conversations: list[str], customers: list[str]) -> dict[str, Any]:
    """A visitor's message:created as Papercups sends it (new message id each time)."""
    k = i % len(conversations)
    return {
        "event": "message:created",
        "payload": {
            "id": str(uuid.uuid4()),
            "object": "message",
            "body": f"Do you ship to Canada? ({i})",
            "type": "reply",
            "content_type": "text",
            "private": False,
            "source": "chat",
            "created_at": "2022-03-14T15:09:26",
            "sent_at": "2022-03-14T15:09:25Z",
            "seen_at": None,
            "conversation_id": conversations[k],
            "account_id": ACCOUNT_ID,
            "user_id": None,
            "user": None,
            "customer_id": customers[k],
            "customer": {"id": customers[k], "object": "customer", "name": None, "email": "joe@example.com"},
            "attachments": [],
            "metadata": None,
        },
    }


class Worker:
    """A Celery worker process on the bench database (prefork, one child)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(  # our own worker, fixed arguments
            [*WORKER_COMMAND, "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self._out.close()


def _reply_latency(papercups: Any, account: Any, samples: int) -> dict[str, float]:
    """Webhook sent -> reply POSTed to Papercups, one visitor question at a time."""
    latencies: list[float] = []
    for _ in range(samples):
        conversation = papercups.start_conversation(account, "joe@example.com")
        posted_before = len(papercups.requests_to("POST", "/api/v1/messages"))
        started = time.perf_counter()
        papercups.visitor_says(account, conversation["id"], "Do you ship to Canada?")  # the webhook, synchronously
        deadline = started + 30
        while len(papercups.requests_to("POST", "/api/v1/messages")) == posted_before:
            if time.perf_counter() > deadline:
                raise RuntimeError("no reply within 30 s")
            time.sleep(0.0005)
        latencies.append(time.perf_counter() - started)
    posted = [m for m in papercups.requests_to("POST", "/api/v1/messages")]
    return {
        "samples": samples,
        "replies_posted": len(posted),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--replies", type=int, default=100)
    parser.add_argument("--conversations", type=int, default=200, help="Conversations the acked messages go to.")
    args = parser.parse_args()

    if not os.environ.get("REDIS_URL"):
        raise SystemExit("bench-webhooks needs REDIS_URL (the webhook path enqueues to the Celery broker).")
    os.environ["NETIA_PUBLIC_URL"] = f"http://127.0.0.1:{PORT}"
    setup("netia_bench_webhooks")
    from django.conf import settings
    from django.core.management import call_command

    from benchmarks.load import Gunicorn, run_load
    from netia.celery import app as celery_app
    from tenants.models import Tenant
    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.papercups_server import FakePapercups
    from webhooks.selectors import papercups_webhook_url
    from webhooks.services import papercups_connection_check

    call_command("migrate_schemas", interactive=False, verbosity=0)
    tenant = _tenant()
    with FakePapercups() as papercups, FakeOpenAI() as llm:
        # The simulator runs on 127.0.0.1: allow-listed for Netia's outbound calls, here and in gunicorn.
        allowed = papercups.url.removeprefix("http://")
        settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [allowed]
        account = papercups.add_account(ACCOUNT_ID, bot_email="bot@bench.test")
        Tenant.objects.filter(pk=tenant.pk).update(papercups_api_key=account.api_key, papercups_base_url=papercups.url)
        tenant.refresh_from_db()
        assert papercups_connection_check(tenant=tenant).ok
        url = papercups_webhook_url(tenant=tenant)
        path = url.removeprefix(f"http://127.0.0.1:{PORT}")
        env = {
            "DJANGO_DEBUG": "true",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
            "NETIA_EMBEDDED_DB_NAME": "netia_bench_webhooks",
            "NETIA_PUBLIC_URL": f"http://127.0.0.1:{PORT}",
            "PAPERCUPS_QUIET_PERIOD_SECONDS": "0",
            "NETIA_OUTBOUND_ALLOWED_HOSTS": allowed,
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"{llm.url}/v1",
        }
        conversations = [str(uuid.uuid4()) for _ in range(args.conversations)]
        customers = [str(uuid.uuid4()) for _ in range(args.conversations)]
        with Gunicorn(app="benchmarks.wsgi_bench:application", port=PORT, env=env) as server:
            run_load(  # warm-up: connections, imports, caches
                port=server.port,
                path="/bench/bare",
                body=lambda i: {"i": i},
                headers={},
                requests=200,
                concurrency=args.concurrency,
            )
            run_load(
                port=server.port,
                path=path,
                body=lambda i: _message_event(i, conversations, customers),
                headers={},
                requests=200,
                concurrency=args.concurrency,
            )
            bare = run_load(
                port=server.port,
                path="/bench/bare",
                body=lambda i: _message_event(i, conversations, customers),
                headers={},
                requests=args.requests,
                concurrency=args.concurrency,
            )
            webhook = run_load(
                port=server.port,
                path=path,
                body=lambda i: _message_event(i, conversations, customers),
                headers={},
                requests=args.requests,
                concurrency=args.concurrency,
            )
            unloaded = {
                name: run_load(
                    port=server.port,
                    path=target,
                    body=lambda i: _message_event(i, conversations, customers),
                    headers={},
                    requests=max(100, args.requests // 10),
                    concurrency=1,
                )
                for name, target in (("bare_drf_view", "/bench/bare"), ("webhook", path))
            }
            purged = celery_app.control.purge()  # the replies queued by the load: no worker ran meanwhile

            assert papercups.register_webhook(account, url), "webhook:verify through gunicorn failed"
            worker = Worker(env, Path(tempfile.gettempdir()) / f"netia-bench-webhooks-worker-{os.getpid()}.log")
            try:
                _reply_latency(papercups, account, 5)  # warm-up
                latency = _reply_latency(papercups, account, args.replies)
            finally:
                worker.stop()

    result = {
        "benchmark": "papercups webhooks",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "acknowledgement": {
            "server": "gunicorn, 2 sync workers; client: keep-alive threads on 127.0.0.1",
            "concurrency": args.concurrency,
            "what": "message:created from a visitor: authenticate, store the message, enqueue the reply (Redis)",
            "conversations": args.conversations,
            "bare_drf_view": bare,
            "webhook": webhook,
            "webhook_vs_bare_throughput_ratio": round(webhook["requests_per_s"] / bare["requests_per_s"], 3),
            "webhook_vs_bare_p50_ratio": round(webhook["p50_ms"] / bare["p50_ms"], 2),
            "webhook_vs_bare_p99_ratio": round(webhook["p99_ms"] / bare["p99_ms"], 2),
            "reply_tasks_purged_after": purged,
            "one_at_a_time": {
                **unloaded,
                "webhook_vs_bare_p50_ratio": round(
                    unloaded["webhook"]["p50_ms"] / unloaded["bare_drf_view"]["p50_ms"], 2
                ),
            },
        },
        "webhook_to_reply_posted": {
            "what": "simulator sends message:created -> ack -> worker answers (fake LLM, instant) -> POST "
            "/api/v1/messages received by the simulator; quiet period 0; one question at a time",
            "worker": "celery prefork, 1 process",
            **latency,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
