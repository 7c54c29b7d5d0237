"""Channel webhooks, Papercups and Crisp side by side: acknowledgement throughput and latency under gunicorn vs a
bare DRF view, and webhook-to-reply-posted latency through a real Celery worker.

Writes benchmarks/results/webhooks.json. Uses its own database (netia_bench_webhooks) and needs Redis
(REDIS_URL: the webhook path enqueues to the broker, and a worker process answers). Papercups and Crisp are
the test simulators (real HTTP both ways; Crisp's hooks signed with the plugin's secret) and the LLM a local
fake answering instantly; the quiet period is set to 0 so the latency is Netia's own (webhook in, reply
generated, reply posted).

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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._django import percentile, setup
from tests import processes

RESULTS = Path(__file__).parent / "results" / "webhooks.json"
ROOT = Path(__file__).resolve().parent.parent
PORT = 8766
ACCOUNT_ID = "5d0c7e8a-2b1f-4c3d-9e8f-7a6b5c4d3e2f"
WEBSITE_ID = "8c842203-7ed8-4e29-a608-7cf78a7d2fcc"
WORKER_COMMAND = [sys.executable, "-m", "celery", "-A", "netia", "worker", "--pool=prefork", "--concurrency=1"]
SHIPPING = "We ship to Canada in 3 to 5 business days for 12 dollars."


def _tenant() -> Any:
    from tenants.audit import SYSTEM
    from tenants.models import Tenant
    from webhooks.services import papercups_tenant_onboard

    tenant = Tenant.objects.filter(papercups_account_id=ACCOUNT_ID).first()
    if tenant is None:
        tenant = papercups_tenant_onboard(
            name="Bench Webhooks",
            owner_email="bench-webhooks@bench.test",
            papercups_account_id=ACCOUNT_ID,
            actor=SYSTEM,
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


def _crisp_event(i: int, sessions: list[str]) -> dict[str, Any]:
    """A visitor's message:send as Crisp's plugin hook carries it (new fingerprint each time)."""
    session = sessions[i % len(sessions)]
    now = int(time.time() * 1000)
    data = {
        "website_id": WEBSITE_ID,
        "session_id": session,
        "inbox_id": None,
        "type": "text",
        "from": "user",
        "origin": "chat",
        "content": f"Do you ship to Canada? ({i})",
        "fingerprint": now * 100 + i % 100,
        "timestamp": now,
        "stamped": True,
        "user": {"nickname": "visitor493603", "user_id": session},
    }
    return {"website_id": WEBSITE_ID, "event": "message:send", "data": data, "timestamp": now}


class Worker:
    """A Celery worker process on the bench database (prefork, one child)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = processes.spawn(  # our own worker, fixed arguments; dies with this process
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
        processes.stop(self.process, signal.SIGTERM, timeout=30)
        self._out.close()


def _reply_latency(ask: Callable[[], None], posted: Callable[[], int], samples: int) -> dict[str, float]:
    """Webhook sent (`ask`, synchronous) -> reply POSTed to the channel (`posted` counts), one question at a time."""
    latencies: list[float] = []
    for _ in range(samples):
        posted_before = posted()
        started = time.perf_counter()
        ask()
        deadline = started + 30
        while posted() == posted_before:
            if time.perf_counter() > deadline:
                raise RuntimeError("no reply within 30 s")
            time.sleep(0.0005)
        latencies.append(time.perf_counter() - started)
    return {
        "samples": samples,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def _ratios(hook: dict[str, Any], bare: dict[str, Any]) -> dict[str, float]:
    return {
        "vs_bare_throughput_ratio": round(hook["requests_per_s"] / bare["requests_per_s"], 3),
        "vs_bare_p50_ratio": round(hook["p50_ms"] / bare["p50_ms"], 2),
        "vs_bare_p99_ratio": round(hook["p99_ms"] / bare["p99_ms"], 2),
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
    from tenants.audit import SYSTEM
    from tenants.models import Tenant
    from tests.fakes.crisp_server import FakeCrisp, sign_hook
    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.papercups_server import FakePapercups
    from webhooks.models import CrispConnection
    from webhooks.selectors import CRISP_WEBHOOK_PATH, papercups_webhook_url
    from webhooks.services import crisp_connection_set, papercups_connection_check

    call_command("migrate_schemas", interactive=False, verbosity=0)
    tenant = _tenant()
    with FakePapercups() as papercups, FakeCrisp() as crisp, FakeOpenAI() as llm:
        # The simulator runs on 127.0.0.1: allow-listed for Netia's outbound calls, here and in gunicorn.
        allowed = papercups.url.removeprefix("http://")
        settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [allowed]
        account = papercups.add_account(ACCOUNT_ID, bot_email="bot@bench.test")
        Tenant.objects.filter(pk=tenant.pk).update(papercups_api_key=account.api_key, papercups_base_url=papercups.url)
        tenant.refresh_from_db()
        assert papercups_connection_check(tenant=tenant).ok
        url = papercups_webhook_url(tenant=tenant)
        path = url.removeprefix(f"http://127.0.0.1:{PORT}")
        crisp_settings = {
            "CRISP_PLUGIN_IDENTIFIER": crisp.identifier,
            "CRISP_PLUGIN_KEY": crisp.key,
            "CRISP_SIGNING_SECRET": crisp.signing_secret,
            "CRISP_API_URL": crisp.api_url,
        }
        for name, value in crisp_settings.items():
            setattr(settings, name, value)
        website = crisp.add_website("Bench", website_id=WEBSITE_ID)
        CrispConnection.objects.filter(website_id=WEBSITE_ID).exclude(tenant=tenant).delete()
        crisp_connection_set(tenant=tenant, website_id=WEBSITE_ID, actor=SYSTEM)
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
            **crisp_settings,
        }
        conversations = [str(uuid.uuid4()) for _ in range(args.conversations)]
        customers = [str(uuid.uuid4()) for _ in range(args.conversations)]
        sessions = [f"session_{uuid.uuid4()}" for _ in range(args.conversations)]

        def signed(raw: bytes) -> dict[str, str]:
            stamp = str(int(time.time() * 1000))
            return {
                "X-Crisp-Request-Timestamp": stamp,
                "X-Crisp-Signature": sign_hook(crisp.signing_secret, stamp, raw),
            }

        papercups_load: dict[str, Any] = {"path": path, "body": lambda i: _message_event(i, conversations, customers)}
        crisp_load: dict[str, Any] = {
            "path": CRISP_WEBHOOK_PATH,
            "body": lambda i: _crisp_event(i, sessions),
            "sign": signed,
        }
        with Gunicorn(app="benchmarks.wsgi_bench:application", port=PORT, env=env) as server:
            load = partial(run_load, port=server.port, headers={}, concurrency=args.concurrency)
            load(path="/bench/bare", body=lambda i: {"i": i}, requests=200)  # warm-up: connections, imports, caches
            load(**papercups_load, requests=200)
            load(**crisp_load, requests=200)
            bare = load(path="/bench/bare", body=papercups_load["body"], requests=args.requests)
            webhook = load(**papercups_load, requests=args.requests)
            crisp_hook = load(**crisp_load, requests=args.requests)
            one = partial(load, requests=max(100, args.requests // 10), concurrency=1)
            unloaded = {
                "bare_drf_view": one(path="/bench/bare", body=papercups_load["body"]),
                "papercups": one(**papercups_load),
                "crisp": one(**crisp_load),
            }
            purged = celery_app.control.purge()  # the replies queued by the load: no worker ran meanwhile

            assert papercups.register_webhook(account, url), "webhook:verify through gunicorn failed"
            crisp.hook_url = f"http://127.0.0.1:{PORT}{CRISP_WEBHOOK_PATH}"
            worker = Worker(env, Path(tempfile.gettempdir()) / f"netia-bench-webhooks-worker-{os.getpid()}.log")

            def papercups_ask() -> None:
                conversation = papercups.start_conversation(account, "joe@example.com")
                papercups.visitor_says(account, conversation["id"], "Do you ship to Canada?")

            def crisp_ask() -> None:
                crisp.visitor_says(website, crisp.start_session(website), "Do you ship to Canada?")

            def papercups_posted() -> int:
                return len(papercups.requests_to("POST", "/api/v1/messages"))

            def crisp_posted() -> int:
                return len(crisp.requests_to("POST", "/v1/website/"))

            try:
                _reply_latency(papercups_ask, papercups_posted, 5)  # warm-up
                latency = _reply_latency(papercups_ask, papercups_posted, args.replies)
                _reply_latency(crisp_ask, crisp_posted, 5)
                crisp_latency = _reply_latency(crisp_ask, crisp_posted, args.replies)
            finally:
                worker.stop()

    result = {
        "benchmark": "channel webhooks: papercups and crisp",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "acknowledgement": {
            "server": "gunicorn, 2 sync workers; client: keep-alive threads on 127.0.0.1",
            "concurrency": args.concurrency,
            "what": "a visitor's message (papercups message:created; crisp message:send, HMAC-signed): "
            "authenticate, store the message, enqueue the reply (Redis)",
            "conversations": args.conversations,
            "bare_drf_view": bare,
            "papercups": {**webhook, **_ratios(webhook, bare)},
            "crisp": {**crisp_hook, **_ratios(crisp_hook, bare)},
            "reply_tasks_purged_after": purged,
            "one_at_a_time": {
                **unloaded,
                "papercups_vs_bare_p50_ratio": round(
                    unloaded["papercups"]["p50_ms"] / unloaded["bare_drf_view"]["p50_ms"], 2
                ),
                "crisp_vs_bare_p50_ratio": round(unloaded["crisp"]["p50_ms"] / unloaded["bare_drf_view"]["p50_ms"], 2),
            },
        },
        "webhook_to_reply_posted": {
            "what": "simulator sends the visitor's message -> ack -> worker answers (fake LLM, instant) -> the reply "
            "POST received by the simulator; quiet period 0; one question at a time",
            "worker": "celery prefork, 1 process",
            "papercups": latency,
            "crisp": crisp_latency,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
