"""The fault drill runs on committed data, like the live tests: its web server thread, its worker processes and
the test itself all see the same rows."""

from tests.webhooks.live.conftest import committed_db, db

__all__ = ["committed_db", "db"]
