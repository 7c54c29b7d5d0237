"""What the channel services queue, always after commit (a task never sees uncommitted rows).

Tasks are named, not imported (`netia.dispatch`): `webhooks.tasks` calls these services and offers its tasks.
Fresh work (a visitor's turn, its first delivery, a conversation refresh) goes to the `replies` queue; work
coming back after a failure (retries, the probe of a paused channel, the sweep's re-queues) to `retries`,
which every worker reads only when `replies` is empty: one tenant's failing channel never delays another
tenant's visitors.
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
RESUME_TASK = "webhooks.tasks.channel_resume"
REFRESH_TASK = "webhooks.tasks.channel_conversation_refresh"
RECONCILE_TENANT_TASK = "webhooks.tasks.channel_reconcile_tenant"

ADAPTERS: dict[str, Callable[[Tenant], ChannelAdapter]] = {
    Conversation.Channel.PAPERCUPS.value: papercups.PapercupsAdapter,
    Conversation.Channel.CRISP.value: crisp.CrispAdapter,
}


def channel_adapter_for(*, tenant: Tenant, channel: str) -> ChannelAdapter:
    """The tenant's adapter for a channel."""
    try:
        return ADAPTERS[channel](tenant)
    except KeyError:
        raise ValueError(f"no adapter for channel {channel!r}") from None


def reply_queue(
    *, tenant: Tenant, conversation_id: int, after_message_id: int | None, countdown: float, retry: bool = False
) -> None:
    """The bot's turn in a conversation, `countdown` seconds after commit (`retry`: found by the sweep)."""
    dispatch.enqueue_on_commit(
        REPLY_TASK,
        countdown=countdown,
        queue=dispatch.RETRIES_QUEUE if retry else None,
        tenant_id=tenant.pk,
        conversation_id=conversation_id,
        after_message_id=after_message_id,
    )


def delivery_queue(*, tenant: Tenant, conversation_id: int, retry: bool = False) -> None:
    """A pass over the conversation's outbox, after commit (`retry`: not the first attempt)."""
    dispatch.enqueue_on_commit(
        DELIVER_TASK,
        queue=dispatch.RETRIES_QUEUE if retry else None,
        tenant_id=tenant.pk,
        conversation_id=conversation_id,
    )


def resume_queue(*, tenant: Tenant, channel: str, countdown: float) -> None:
    """The probe of a paused channel, at the end of its pause."""
    dispatch.enqueue_on_commit(
        RESUME_TASK, countdown=countdown, queue=dispatch.RETRIES_QUEUE, tenant_id=tenant.pk, channel=channel
    )


def refresh_queue(*, tenant: Tenant, channel: str, conversation_external_id: str) -> None:
    """Read the conversation from the channel and apply its state (after a `conversation:updated`)."""
    dispatch.enqueue_on_commit(
        REFRESH_TASK, tenant_id=tenant.pk, channel=channel, conversation_external_id=conversation_external_id
    )


def reconcile_queue(*, tenant_id: int, channel: str) -> None:
    """A reconciliation of one tenant's account on a channel, now (the beat job runs outside any transaction)."""
    dispatch.enqueue_safely(RECONCILE_TENANT_TASK, tenant_id=tenant_id, channel=channel)
