"""Test helpers that look at our own state while an outside service is being called."""

from __future__ import annotations

from typing import Any

from django.db import connections


class TransactionProbe:
    """Records, for each outside call, how many transactions the test thread's connection had open beyond the
    test's own (a fake server calls the probe from its own thread while the client waits for its answer).

    Zero means no transaction of ours, and so no row lock, was held during the call.
    """

    def __init__(self) -> None:
        self.connection = connections["default"]  # this thread's connection object, read later from another
        self.baseline = len(self.connection.atomic_blocks)
        self.seen: list[tuple[str, int]] = []

    def __call__(self, label: str) -> None:
        self.seen.append((label, len(self.connection.atomic_blocks) - self.baseline))


def redis_commands_recorded(monkeypatch: Any) -> list[str]:
    """The name of every command redis-py sends from now on (the test's `monkeypatch` undoes the recording):
    round trips counted at the client library, our code untouched."""
    import redis

    commands: list[str] = []
    execute = redis.Redis.execute_command

    def recorded(self: Any, *args: Any, **options: Any) -> Any:
        commands.append(str(args[0]))
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", recorded)
    return commands
