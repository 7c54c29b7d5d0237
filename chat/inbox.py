"""Writes a business's team makes on its conversations from the portal: take over, hand back, notes.

Runs in the tenant's schema. A human reply itself goes through the channel (Papercups), not through here.
"""

from __future__ import annotations

from django.db import transaction

from chat.models import Conversation, Message
from chat.services import conversation_hand_off, conversation_set_status, message_record_agent
from netia.errors import Conflict, ValidationFailed

TAKEN_OVER = "taken_over"
NOTE_MAX_CHARS = 5000


@transaction.atomic
def conversation_take_over(*, conversation_id: int) -> Conversation:
    """A person takes the conversation: the bot stops answering it until it is handed back."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.status != Conversation.Status.BOT:
        raise Conflict(
            "Only a conversation the bot is answering can be taken over.", extra={"status": conversation.status}
        )
    return conversation_hand_off(conversation=conversation, reason=TAKEN_OVER)


@transaction.atomic
def conversation_hand_back(*, conversation_id: int) -> Conversation:
    """Give the conversation back to the bot, which answers from the visitor's next message on."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.status != Conversation.Status.HUMAN:
        raise Conflict("Only a conversation a person has can be handed back.", extra={"status": conversation.status})
    return conversation_set_status(conversation=conversation, status=Conversation.Status.BOT)


def conversation_note_add(*, conversation: Conversation, author: str, text: str) -> Message:
    """An internal note on the conversation, never shown to the visitor; signed with the author's email."""
    text = text.strip()
    if not text or len(text) > NOTE_MAX_CHARS:
        raise ValidationFailed(f"A note is 1 to {NOTE_MAX_CHARS} characters.", extra={"field": "text"})
    message, _ = message_record_agent(conversation=conversation, content=f"{author}: {text}", private=True)
    return message
