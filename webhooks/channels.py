"""The interface between Netia's channel-agnostic machinery and one chat provider.

A provider module (`webhooks/papercups.py`; a Crisp or Chatwoot one would sit beside it) turns the
provider's webhooks and API answers into the plain records below and implements `ChannelAdapter` for
sending. Everything else (event handling, the outbox, retries, reconciliation) lives in
`webhooks/services/` and works on these records only.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Author(enum.StrEnum):
    """Who wrote a message the channel reports."""

    VISITOR = "visitor"  # the website visitor: the only author the bot answers
    AGENT = "agent"  # a human agent of the tenant
    SELF = "self"  # Netia's own bot user (an echo of what we sent)
    OTHER = "other"  # system messages and anything else: ignored


@dataclass(frozen=True)
class InboundMessage:
    """A message as the channel reports it (webhook or API listing)."""

    external_id: str
    conversation_external_id: str
    author: Author
    content: str
    private: bool = False
    created_at: datetime | None = None
    customer_external_id: str = ""
    visitor_name: str = ""
    visitor_email: str = ""
    # For SELF messages: the Netia message (public id) it carries in its metadata, if any.
    netia_message_id: str = ""


@dataclass(frozen=True)
class ConversationState:
    """A conversation as the channel reports it: the fields Netia keeps in step."""

    external_id: str
    customer_external_id: str
    # None where the event says nothing about it (Crisp reports state and routing in separate events).
    closed: bool | None
    # The channel's id of the assigned agent ("" when unassigned) and whether that is a human.
    assignee_external_id: str | None = ""
    assigned_to_human: bool = False


@dataclass(frozen=True)
class RemoteConversation:
    """A conversation as the channel holds it right now, read before the bot posts into it."""

    state: ConversationState
    # Our messages already in the conversation: Netia message public id -> the channel's message id.
    sent: dict[str, str]
    # False: read from what Netia already knows, no call reached the channel (its circuit learns nothing).
    reached: bool = True


@dataclass(frozen=True)
class OutboundMessage:
    """A bot message to post into a channel conversation."""

    netia_message_id: uuid.UUID
    conversation_external_id: str
    content: str
    private: bool  # an internal note for the agents, invisible to the visitor


class DeliveryFailed(Exception):
    """The channel did not take the message or call; `retryable` says whether trying again may help."""

    def __init__(self, detail: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.status = status


class ChannelAdapter(Protocol):
    """What Netia needs from a chat provider, for one tenant's account on it."""

    channel: str  # a chat.models.Conversation.Channel value

    def send(self, message: OutboundMessage) -> str:
        """Post the message; return the channel's id for it. Raises DeliveryFailed."""
        ...

    def conversation_read(self, *, conversation_external_id: str) -> RemoteConversation:
        """The conversation as the channel holds it now (state, and our messages already posted in it).

        Read before posting: a human may have taken the conversation or closed it without Netia being told,
        and an attempt whose outcome is unknown may have been posted already. Raises DeliveryFailed.
        """
        ...

    def hand_off(self, *, conversation_external_id: str) -> None:
        """Tell the channel the bot let go of the conversation (unassign the bot, raise priority)."""
        ...

    def recent_messages(self, *, since: datetime) -> list[InboundMessage]:
        """Messages created at or after `since` in the tenant's account, oldest first. Raises DeliveryFailed."""
        ...
