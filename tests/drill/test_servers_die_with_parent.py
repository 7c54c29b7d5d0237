"""The drill's servers die with the process that started them, even when it is SIGKILLed (no teardown runs):
pytest-timeout's thread method or a crashed run must not leave Redis, PostgreSQL, Celery workers (and their
prefork pool children) or gunicorn running on the machine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings as django_settings

from tests.drill.servers import PrivatePostgres

ROOT = Path(__file__).resolve().parents[2]

# Started by a process of its own, which the test then SIGKILLs; it prints "ready" once every server is up.
STARTER = """
import os, sys, time
from pathlib import Path
from tests.drill.servers import PrivatePostgres, PrivateRedis, WebServer, Worker, free_port

log_dir = Path(sys.argv[1])
redis = PrivateRedis()
redis.start()
cluster = ""
if PrivatePostgres.available():
    postgres = PrivatePostgres()
    cluster = str(postgres.directory)  # never removed by this process: the test does
    postgres.start()
env = {**os.environ, "REDIS_URL": redis.url, "CELERY_TASK_ALWAYS_EAGER": "false", "LOG_LEVEL": "WARNING"}
worker = Worker("orphan", env, log_dir / "worker.log", concurrency=2)
web = WebServer(env, log_dir / "web.log")
worker.wait_ready()
web.wait_ready()
print("ready", cluster, flush=True)
time.sleep(600)
"""


def _alive(process: psutil.Process) -> bool:
    """Still running (a zombie waiting for a reaper has run its last instruction; pid reuse is ruled out)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="the worker's settings need REDIS_URL")
def test_a_sigkilled_starter_takes_every_server_and_worker_down_with_it(tmp_path):
    starter = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", STARTER, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "starter.log").open("wb"),
    )
    children: list[psutil.Process] = []
    cluster = ""
    try:
        assert starter.stdout is not None
        line = starter.stdout.readline().decode()  # blocks until ready (or the starter failed: then EOF)
        assert line.startswith("ready "), (tmp_path / "starter.log").read_text()
        cluster = line.removeprefix("ready ").strip()
        tree = psutil.Process(starter.pid)
        children += tree.children(recursive=True)
        names = sorted({" ".join(c.cmdline()[:4]).rsplit("/", 1)[-1] for c in children})
        # Celery's main process and its two pool children, gunicorn's master and workers, redis-server, postgres.
        worker_processes = [c for c in children if "celery" in c.cmdline()]
        assert len(worker_processes) >= 3, names
        assert any("gunicorn" in c.cmdline() for c in children), names
        assert any("redis-server" in c.name() for c in children), names
        if PrivatePostgres.available():
            assert any(c.name() == "postgres" for c in children), names

        os.kill(starter.pid, signal.SIGKILL)
        starter.wait(10)

        # The children die asynchronously (gunicorn's workers notice their master is gone within a second or two,
        # a worker's warm shutdown takes a moment): wait, boundedly, until none is left.
        deadline = time.monotonic() + 60
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [f"{c.pid} {' '.join(c.cmdline())}" for c in children if _alive(c)]
        assert survivors == []
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(10)
        for child in children:  # whatever survived (a failed run) does not outlive the test
            if _alive(child):
                child.kill()
        if cluster:
            shutil.rmtree(cluster, ignore_errors=True)
