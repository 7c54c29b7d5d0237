"""Channel services, one module per concern; the public names are re-exported here.

- `events`: raw webhook events of every channel, stored once by the request and processed by a worker;
- `inbound`: webhook events in, Papercups' and Crisp's hooks (authenticate, check, store once) and their
  processing (store the messages once, queue the bot's turn);
- `turns`: the bot's turn in a channel conversation;
- `outbox`: delivering the bot's messages and handoff calls, and staff retries;
- `reconcile`: catching up on dropped webhooks, lost tasks and conversation changes;
- `circuit`: per-tenant backoff for a channel account that keeps failing;
- `connection`: connecting a tenant's Papercups account (onboarding, checks, webhook URL, widget, the optional
  scoped webhook) and its Crisp website (installed-plugin check, chatbox);
- `queueing`: the adapters, and what these services queue after commit (tasks are named, never imported).

Everything below the Papercups-specific entry points works through `webhooks.channels` (records and the
ChannelAdapter protocol), so another chat provider is a new module beside `webhooks/papercups.py`.

Exactly one reply per visitor turn rests on five things:
- visitor messages are stored once, keyed on the channel's message id (`message_record_visitor`);
- `conversation_reply` answers all unanswered visitor messages and records the answer only if they are
  still unanswered (no lock is held while the LLM answers: `chat.replies`);
- a bot message is the outbox: each delivery attempt is recorded (status `sending`, attempts + 1) and
  committed before the request leaves, and the conversation is read from the channel before each pass
  (a human may have taken it; an attempt whose outcome is unknown may be there already);
- one sender per conversation at a time (a PostgreSQL advisory lock, released if the worker dies);
- a sweep queues again whatever no task is taking care of (`reconcile`), and a channel that keeps failing
  is paused for its tenant only (`circuit`).
"""

from webhooks.backoff import retry_delay
from webhooks.services.circuit import circuit_failure, circuit_open_until, circuit_success
from webhooks.services.connection import (
    CrispConnectionFailed,
    PapercupsConnectionFailed,
    WidgetSnippet,
    crisp_connection_check,
    crisp_connection_set,
    crisp_widget_snippet,
    papercups_connection_check,
    papercups_connection_set,
    papercups_tenant_onboard,
    papercups_webhook_secret_rotate,
    papercups_webhook_subscribe,
    papercups_widget_snippet,
)
from webhooks.services.events import inbound_event_process, inbound_event_store, inbound_events_sweep
from webhooks.services.inbound import (
    CrispNotConfigured,
    Outcome,
    channel_conversation_changed,
    channel_conversation_sync,
    channel_message_receive,
    crisp_webhook_receive,
    papercups_event_process,
    papercups_webhook_receive,
    papercups_webhook_verify,
)
from webhooks.services.outbox import (
    DeliveryOutcome,
    channel_probe,
    deliveries_pending,
    deliveries_resume,
    failed_delivery_retry,
    outbox_deliver,
    resume_now,
)
from webhooks.services.queueing import ADAPTERS, channel_adapter_for
from webhooks.services.reconcile import (
    ReconcileResult,
    channel_conversation_refresh,
    channel_reconcile,
    channel_reconcile_all,
)
from webhooks.services.turns import Turn, channel_conversation_answer

__all__ = [
    "ADAPTERS",
    "CrispConnectionFailed",
    "CrispNotConfigured",
    "DeliveryOutcome",
    "Outcome",
    "PapercupsConnectionFailed",
    "ReconcileResult",
    "Turn",
    "WidgetSnippet",
    "channel_adapter_for",
    "channel_conversation_answer",
    "channel_conversation_changed",
    "channel_conversation_refresh",
    "channel_conversation_sync",
    "channel_message_receive",
    "channel_probe",
    "channel_reconcile",
    "channel_reconcile_all",
    "circuit_failure",
    "circuit_open_until",
    "circuit_success",
    "crisp_connection_check",
    "crisp_connection_set",
    "crisp_webhook_receive",
    "crisp_widget_snippet",
    "deliveries_pending",
    "deliveries_resume",
    "failed_delivery_retry",
    "inbound_event_process",
    "inbound_event_store",
    "inbound_events_sweep",
    "outbox_deliver",
    "papercups_connection_check",
    "papercups_connection_set",
    "papercups_event_process",
    "papercups_tenant_onboard",
    "papercups_webhook_receive",
    "papercups_webhook_secret_rotate",
    "papercups_webhook_subscribe",
    "papercups_webhook_verify",
    "papercups_widget_snippet",
    "resume_now",
    "retry_delay",
]
