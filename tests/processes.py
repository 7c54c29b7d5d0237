"""Child processes that die with the run that started them: the servers and workers tests (and benchmarks) spawn.

`spawn` starts each child in a process group of its own (a new session), so teardown signals it and everything
it forked at once (`stop`, `kill`), and with Linux's parent-death signal (prctl PR_SET_PDEATHSIG = SIGKILL), so a
run that is itself killed (pytest-timeout's thread method, SIGKILL, a crash: no teardown runs) still takes it
down. What the child forks looks after itself: Celery's prefork pool children set the same signal
(celery.concurrency.prefork.process_initializer), gunicorn's workers exit when their master goes, and
PostgreSQL's backends when their postmaster goes.

The kernel sends the signal when the *thread* that forked the child ends, not the process; so every child is
forked by one thread that lives as long as the process (the fault drill restarts Redis and workers from short-lived
threads, and those children must outlive them).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the child, between fork and exec, only calls into it (no import, no dlopen).
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) if sys.platform == "linux" else None


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed: go now
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


# Its one thread waits for work until the interpreter exits.
_forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawn")


def spawn(command: Sequence[str], **popen_arguments: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(command, **popen_arguments)` in a new process group, SIGKILLed when this process dies."""
    parent = os.getpid()

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - callers pass our own fixed commands
            list(command), start_new_session=True, preexec_fn=_die_with(parent), **popen_arguments
        )

    started: Future[subprocess.Popen[bytes]] = _forker.submit(popen)
    return started.result()


def kill(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGKILL the child's whole process group at once (no shutdown) and reap the child."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Ask the child to stop (`sig` to its group); SIGKILL the group if it is not gone within `timeout` seconds,
    and in any case whatever it forked and left behind."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    kill(process)
