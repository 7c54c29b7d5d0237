"""Private servers for the fault drill: a Redis, a PostgreSQL cluster and Celery workers this test alone uses,
so it can kill and restart them without disturbing anything else on the machine (other test runs share the
machine's PostgreSQL on 5432 and Redis on 6379). Each is started by tests/processes.py's `spawn`: it dies with the
process that started it, even a SIGKILLed one."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import processes

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within {timeout} s")
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class PrivateRedis:
    """`redis-server` on a free port, without persistence: a restart loses every queued task (the worst case)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server",
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        ]
        self.process = processes.spawn(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _accepts(self.port), 10, "redis-server")

    def kill(self) -> None:
        if self.process is not None:
            processes.kill(self.process, timeout=5)

    def restart(self, down_for: float = 1.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()
        self.restarts += 1


class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own (Debian's binaries, initdb into a temporary directory) on a free port.

    The postmaster runs in the foreground as our child (not daemonized by pg_ctl), so it dies with us. PostgreSQL
    refuses to run as root, so the cluster runs as the `postgres` system user when we are root.
    """

    READY = b"database system is ready to accept connections"

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="netia-drill-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "log"
        self.process: subprocess.Popen[bytes] | None = None
        # As the postgres user (uid, gid and no supplementary groups) when we are root; the parent-death signal
        # is armed after the switch (the kernel clears it on a credentials change).
        self._as: dict[str, Any] = (
            {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}
        )
        if self._as:
            shutil.chown(self.directory, "postgres")

    @staticmethod
    def available() -> bool:
        if not (PG_BIN / "initdb").exists():
            return False
        try:
            return os.geteuid() != 0 or bool(pwd.getpwnam("postgres"))
        except KeyError:
            return False

    def start(self) -> None:
        if not self.data.exists():
            initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"]
            subprocess.run(initdb, check=True, capture_output=True, timeout=60, cwd=self.directory, **self._as)  # noqa: S603
        options = ["-p", str(self.port), "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1"]
        since = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:  # the server's output goes to its log file, never to a pipe of ours
            self.process = processes.spawn(
                [str(PG_BIN / "postgres"), "-D", str(self.data), *options, "-c", "fsync=off"],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as,
            )
        process = self.process

        def ready() -> bool:
            with self.log.open("rb") as log:
                log.seek(since)
                return self.READY in log.read() or process.poll() is not None

        wait_for(ready, 60, "postgres")
        assert process.poll() is None, self.log.read_text()

    def restart(self) -> None:
        """A fast shutdown (what `pg_ctl -m fast restart` does: sessions are ended), then start again."""
        assert self.process is not None
        processes.stop(self.process, signal.SIGINT, timeout=60)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process, signal.SIGQUIT)  # immediate shutdown: the cluster is thrown away
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def load(self, *, source_url: str, schemas: list[str]) -> None:
        """Copy the named schemas (definitions and rows) of another database into this cluster's `postgres`."""
        dump = subprocess.run(  # noqa: S603
            [str(PG_BIN / "pg_dump"), "--no-owner", *(f"--schema={name}" for name in schemas), source_url],
            check=True,
            capture_output=True,
            timeout=60,
        )
        # The dump re-creates `public`, which initdb already made: that one statement fails harmlessly.
        subprocess.run(  # noqa: S603
            [str(PG_BIN / "psql"), "-q", self.url()], input=dump.stdout, check=True, capture_output=True, timeout=60
        )


class Worker:
    """`celery -A netia worker` as `make worker` starts it (every queue), in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log: Path, concurrency: int = 2) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        self.process = processes.spawn(
            [
                sys.executable,
                *("-m", "celery", "-A", "netia", "worker", "--pool=prefork", f"--concurrency={concurrency}"),
                *("-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel=INFO"),
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: b"ready." in self.log.read_bytes() or self.process.poll() is not None, timeout, "worker")
        assert self.process.poll() is None, self.log.read_text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool's children at once, mid-task (no warm shutdown, nothing acknowledged)."""
        processes.kill(self.process)

    def stop(self) -> None:
        """Warm shutdown; then whatever is left of the group (pool children a crashed worker left behind) is killed."""
        processes.stop(self.process)
        self._log_file.close()


class WebServer:
    """gunicorn with the project's config (as the Dockerfile serves it) on a free port."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2, threads: int = 4) -> None:
        self.port = free_port()
        self._log_file = log.open("wb")
        self.process = processes.spawn(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "netia.wsgi:application",
                "-c",
                "gunicorn.conf.py",
                *("--threads", str(threads)),
            ],
            cwd=ROOT,
            env={**env, "PORT": str(self.port), "WEB_CONCURRENCY": str(workers)},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: _accepts(self.port) or self.process.poll() is not None, timeout, "gunicorn")
        assert self.process.poll() is None, "gunicorn exited"

    def stop(self) -> None:
        processes.stop(self.process)
        self._log_file.close()
