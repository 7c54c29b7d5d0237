"""A Celery worker process killed (SIGKILL) while its reply is on the wire: the task is redelivered to a new
worker process, which finds the reply already posted and does not send it again.

A real `celery worker` (prefork, one child) runs against the test database and Redis; needs REDIS_URL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django_tenants.utils import tenant_context

from chat.models import Message
from netia.celery import app as celery_app
from tests import processes
from tests.webhooks.conftest import SHIPPING, wait_until
from tests.webhooks.live.conftest import QUIET, Live

pytestmark = pytest.mark.skipif(not django_settings.REDIS_URL, reason="a worker process needs a Redis broker")
ROOT = Path(__file__).resolve().parents[3]


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class ProcessWorker:
    """`celery -A netia worker --pool=prefork --concurrency=1` on the test database."""

    def __init__(self, log: Path) -> None:
        url = os.environ.get("DATABASE_URL", "")
        env = {
            **os.environ,
            "DATABASE_URL": f"{url.rpartition('/')[0]}/{connection.settings_dict['NAME']}",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "PAPERCUPS_QUIET_PERIOD_SECONDS": str(QUIET),
            "PAPERCUPS_RETRY_BASE_SECONDS": "0.05",
            "PAPERCUPS_RETRY_MAX_SECONDS": "0.2",
            "PAPERCUPS_TIMEOUT_SECONDS": "10",
            # The Papercups simulator on 127.0.0.1, allow-listed like in this process (tests/webhooks/conftest.py).
            "NETIA_OUTBOUND_ALLOWED_HOSTS": ",".join(django_settings.NETIA_OUTBOUND_ALLOWED_HOSTS),
            "LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "celery", "-A", "netia", "worker", "--pool=prefork", "--concurrency=1"]
        self.log = log
        self._log_file = log.open("wb")
        self.process = processes.spawn(
            [*command, "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: b"ready." in log.read_bytes() or self.process.poll() is not None, timeout=30)
        assert self.process.poll() is None, log.read_text()

    def child(self) -> int:
        """The pool's (only) child process."""
        (pid,) = wait_until(lambda: _children(self.process.pid), timeout=10)
        return int(pid)

    def wait_idle(self) -> None:
        """Nothing to wait for beyond what the test waited for; the process is stopped by the fixture."""

    def stop(self) -> None:
        processes.stop(self.process, signal.SIGQUIT)  # cold shutdown: the children go too
        self._log_file.close()


@pytest.fixture
def worker(db: None, papercups: Any, tmp_path: Path) -> Iterator[ProcessWorker]:
    """Overrides the in-thread worker: a real worker process (so that it can be killed)."""
    celery_app.conf.task_always_eager = False
    process = ProcessWorker(tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()
        celery_app.conf.task_always_eager = True


def test_a_worker_killed_mid_send_does_not_make_the_reply_go_out_twice(live: Live, worker: ProcessWorker) -> None:
    live.papercups.slow_next("POST", "/api/v1/messages", 1.5)  # Papercups stores the reply, answers late
    conversation = live.papercups.start_conversation(live.account, "joe@example.com")
    live.papercups.visitor_says(live.account, conversation["id"], "Do you ship to Canada?")
    wait_until(live.message_posts, timeout=15)
    killed = worker.child()

    os.kill(killed, signal.SIGKILL)
    # The redelivered task reads the conversation first, finds the reply there, and does not post it again.
    wait_until(
        lambda: len(live.papercups.requests_to("GET", f"/api/v1/conversations/{conversation['id']}")) >= 2, timeout=20
    )
    with tenant_context(live.tenant):
        bot = wait_until(lambda: Message.objects.filter(role="bot", delivery_status="sent").first(), timeout=10)

    (reply,) = live.bot_messages(conversation["id"])
    assert (bot.content, bot.delivery_attempts, bot.external_id) == (SHIPPING, 1, reply["id"])
    assert len(live.message_posts()) == 1
    assert worker.child() != killed
    assert b"WorkerLostError" in worker.log.read_bytes()
