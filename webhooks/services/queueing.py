"""What the channel services queue, always after commit (a task never sees uncommitted rows).

Tasks are named, not imported (`netia.dispatch`): `webhooks.tasks` calls these services and offers its tasks.
"""

from __future__ import annotations

from collections.abc import Callable

from chat.models import Conversation
from netia import dispatch
from tenants.models import Tenant
from webhooks import crisp, papercups
from webhooks.channels import ChannelAdapter

REPLY_TASK = "webhooks.tasks.channel_reply"
DELIVER_TASK = "webhooks.tasks.channel_deliver"
RECONCILE_TENANT_TASK = "webhooks.tasks.channel_reconcile_tenant"

ADAPTERS: dict[str, Callable[[Tenant], ChannelAdapter]] = {
    Conversation.Channel.PAPERCUPS.value: papercups.PapercupsAdapter,
    Conversation.Channel.CRISP.value: crisp.CrispAdapter,
}
# Publishing from a webhook must not outlast Papercups' ~5 s patience: one quick retry, then the sweep.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def channel_adapter_for(*, tenant: Tenant, channel: str) -> ChannelAdapter:
    """The tenant's adapter for a channel."""
    try:
        return ADAPTERS[channel](tenant)
    except KeyError:
        raise ValueError(f"no adapter for channel {channel!r}") from None


def reply_queue(*, tenant: Tenant, conversation_id: int, after_message_id: int | None, countdown: float) -> None:
    """The bot's turn in a conversation, `countdown` seconds after commit."""
    dispatch.enqueue_on_commit(
        REPLY_TASK,
        robust=True,
        countdown=countdown,
        retry_policy=PUBLISH_RETRY,
        tenant_id=tenant.pk,
        conversation_id=conversation_id,
        after_message_id=after_message_id,
    )


def delivery_queue(*, tenant: Tenant, conversation_id: int) -> None:
    """A pass over the conversation's outbox, after commit."""
    dispatch.enqueue_on_commit(
        DELIVER_TASK, robust=True, retry_policy=PUBLISH_RETRY, tenant_id=tenant.pk, conversation_id=conversation_id
    )


def reconcile_queue(*, tenant_id: int, channel: str) -> None:
    """A reconciliation of one tenant's account on a channel, now (the beat job runs outside any transaction)."""
    dispatch.enqueue(RECONCILE_TENANT_TASK, retry_policy=PUBLISH_RETRY, tenant_id=tenant_id, channel=channel)
