"""One tenant's backlog never delays another tenant's visitors.

Tenant A's Papercups stops answering (connections accepted, never answered) while it has a large backlog of
replies to deliver; tenant B's visitor asks a question. Fresh turns are read before retries (separate queues),
and A's channel is paused after a few failures (per-tenant backoff), so B is answered ahead of A's backlog,
without each of A's deliveries spending a timeout on the dead server.

No clock decides the outcome: B asks while A's first delivery is held hung by the test, and B's reply must reach
its Papercups when no other A delivery has run (observed from the fake servers and the worker's record), which a
worker serving A's backlog first could not do however fast or slow the machine is.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django_tenants.utils import tenant_context

from chat.models import Conversation, Message
from netia import dispatch
from tests.fakes.base import RecordedRequest
from tests.fakes.papercups_server import FakePapercups
from tests.webhooks.conftest import SHIPPING, wait_until
from tests.webhooks.live.conftest import Live, TaskTracker, connect, disconnect
from webhooks.models import ChannelCircuit
from webhooks.services.queueing import DELIVER_TASK

pytestmark = pytest.mark.skipif(not django_settings.REDIS_URL, reason="queue order needs the Redis broker")
BACKLOG = 200


class Unresponsive:
    """A server that accepts connections and never answers (what a hung or firewalled Papercups looks like)."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def release(self) -> None:
        """Hang up on the connections held so far (their clients fail at once); later ones are held too."""
        held, self._held = self._held, []
        for connection in held:
            connection.close()

    def _accept(self) -> None:
        self._server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            self.accepted += 1
            self._held.append(connection)

    def close(self) -> None:
        self._stop.set()
        for connection in self._held:
            connection.close()
        self._server.close()


@pytest.fixture
def unresponsive() -> Iterator[Unresponsive]:
    server = Unresponsive()
    yield server
    server.close()


def test_a_tenant_whose_papercups_hangs_with_a_backlog_does_not_delay_another_tenants_visitor(
    live: Live, unresponsive: Unresponsive, settings: Any
) -> None:
    # Until the test hangs up, A's first delivery waits on the dead server (bounded, should that never happen).
    settings.PAPERCUPS_TIMEOUT_SECONDS = 60.0
    settings.PAPERCUPS_RETRY_BASE_SECONDS = 1.0
    settings.PAPERCUPS_RETRY_MAX_SECONDS = 3.0
    settings.PAPERCUPS_QUIET_PERIOD_SECONDS = 0  # B's turn is queued at once: every step of it is on `replies`
    tracker = live.worker
    assert isinstance(tracker, TaskTracker)
    with FakePapercups() as other_papercups:
        settings.NETIA_OUTBOUND_ALLOWED_HOSTS = [
            *settings.NETIA_OUTBOUND_ALLOWED_HOSTS,
            other_papercups.url.removeprefix("http://"),
            unresponsive.url.removeprefix("http://"),
        ]
        backlogged, _, _ = connect(other_papercups, scope=None, company="Backlog")
        try:
            backlogged.papercups_base_url = unresponsive.url  # its Papercups now hangs
            backlogged.save(update_fields=["papercups_base_url"])
            with tenant_context(backlogged):
                for number in range(BACKLOG):
                    conversation = Conversation.objects.create(channel="papercups", external_id=f"backlog-{number}")
                    Message.objects.create(
                        conversation=conversation,
                        channel="papercups",
                        role="bot",
                        content="Hi!",
                        delivery_status="pending",
                    )
            for conversation_id in range(1, BACKLOG + 1):  # their deliveries, retrying
                dispatch.enqueue(
                    DELIVER_TASK, queue=dispatch.RETRIES_QUEUE, tenant_id=backlogged.pk, conversation_id=conversation_id
                )
            wait_until(lambda: unresponsive.accepted >= 1, timeout=30)  # the worker is stuck in A's first delivery
            # The moment B's reply reaches B's Papercups: how many deliveries had the worker finished by then?
            seen_at_reply: list[int] = []

            def on_request(request: RecordedRequest) -> None:
                if (request.method, request.path) == ("POST", "/api/v1/messages") and not seen_at_reply:
                    seen_at_reply.append(len(tracker.runs("channel_deliver")))

            live.papercups.on_request = on_request

            asked = time.monotonic()
            visitor = live.papercups.start_conversation(live.account, "joe@example.com")
            live.papercups.visitor_says(live.account, visitor["id"], "Do you ship to Canada?")  # queued when answered
            queued_while_hung = (unresponsive.accepted, tracker.runs("channel_deliver"))
            settings.PAPERCUPS_TIMEOUT_SECONDS = 1.0  # A's later deliveries time out (until its channel pauses)
            unresponsive.release()
            (reply,) = wait_until(lambda: live.bot_messages(visitor["id"]), timeout=30)
            waited = time.monotonic() - asked

            deliveries = wait_until(lambda: len(runs := tracker.runs("channel_deliver")) > BACKLOG and runs, 60)
            with tenant_context(backlogged):
                still_pending = Message.objects.filter(delivery_status="pending").count()
            circuit = ChannelCircuit.objects.get(tenant=backlogged, channel="papercups")
            print(  # shown with -s; not asserted, the machine may be loaded
                f"\nisolation: tenant B answered in {waited:.2f} s; tenant A's hung Papercups saw "
                f"{unresponsive.accepted} connections for {BACKLOG} deliveries ({circuit.failures} failures)"
            )
            assert reply["body"] == SHIPPING
            # B asked while A's first delivery hung and no delivery had finished, and B's reply went out before
            # any A delivery but that one: served ahead of A's backlog, not behind it.
            assert queued_while_hung == (1, [])
            assert seen_at_reply == [1]
            assert still_pending == BACKLOG  # A's backlog waits for its channel: nothing given up, nothing lost
            assert circuit.failures >= settings.CHANNEL_CIRCUIT_FAILURES
            assert sum(1 for state, outcome in deliveries if state == "SUCCESS" and outcome.get("paused")) > 150
            # Paused after a few timeouts: the dead server saw a handful of attempts, not one per delivery.
            assert unresponsive.accepted <= settings.CHANNEL_CIRCUIT_FAILURES + 3
        finally:
            live.papercups.on_request = None
            disconnect(backlogged)
