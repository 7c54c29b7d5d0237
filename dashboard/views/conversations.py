"""Conversations: search and filters, transcript, take over / hand back, internal notes, export."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string

from chat import inbox
from chat.models import Conversation
from chat.selectors import (
    ConversationFilters,
    bot_configuration_get,
    conversation_get,
    conversation_intents,
    conversation_search,
    conversation_transcript,
)
from dashboard.forms import ConversationFilterForm, NoteForm
from dashboard.portal import TEAM, PortalView, paginated


class ConversationListView(PortalView):
    roles = TEAM

    def get(self, request: HttpRequest) -> HttpResponse:
        form = ConversationFilterForm(request.GET or None, intents=conversation_intents())
        data = form.cleaned_data if form.is_bound and form.is_valid() else {}
        filters = ConversationFilters(
            q=data.get("q", ""),
            status=data.get("status", ""),
            channel=data.get("channel", ""),
            intent=data.get("intent", ""),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            tz=bot_configuration_get().timezone,
        )
        context = {
            "form": form,
            "filtered": bool(data and any(data.values())),
            **paginated(request, conversation_search(filters=filters).select_related("lead")),
        }
        template = "dashboard/conversations/list.html"
        if self.request.htmx and self.request.htmx.target == "conversation-results":
            template = "dashboard/conversations/_results.html"
        return self.page(template, context)


class _ConversationView(PortalView):
    roles = TEAM

    def conversation(self, public_id: UUID) -> Conversation:
        """The conversation in this business's schema: another business's id is simply not found (404)."""
        conversation = conversation_get(public_id=public_id)
        if conversation is None:
            raise Http404
        return conversation


class ConversationDetailView(_ConversationView):
    def get(self, request: HttpRequest, public_id: UUID) -> HttpResponse:
        conversation = self.conversation(public_id)
        return self.page(
            "dashboard/conversations/detail.html",
            {
                "conversation": conversation,
                "transcript": conversation_transcript(conversation=conversation),
                "note_form": NoteForm(),
            },
        )


class ConversationTakeOverView(_ConversationView):
    def post(self, request: HttpRequest, public_id: UUID) -> HttpResponse:
        conversation = inbox.conversation_take_over(conversation_id=self.conversation(public_id).pk)
        messages.success(request, "You have this conversation: the bot stays silent until you hand it back.")
        return redirect("dashboard:conversation", public_id=conversation.public_id)


class ConversationHandBackView(_ConversationView):
    def post(self, request: HttpRequest, public_id: UUID) -> HttpResponse:
        conversation = inbox.conversation_hand_back(conversation_id=self.conversation(public_id).pk)
        messages.success(request, "The bot answers this conversation again from the visitor's next message.")
        return redirect("dashboard:conversation", public_id=conversation.public_id)


class ConversationNoteView(_ConversationView):
    def post(self, request: HttpRequest, public_id: UUID) -> HttpResponse:
        conversation = self.conversation(public_id)
        form = NoteForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Write a note of at most 5,000 characters.")
        else:
            inbox.conversation_note_add(
                conversation=conversation, author=self.portal.user.email, text=form.cleaned_data["text"]
            )
            messages.success(request, "Note added.")
        return redirect("dashboard:conversation", public_id=conversation.public_id)


class ConversationExportView(_ConversationView):
    """The transcript as a text file, notes included."""

    def get(self, request: HttpRequest, public_id: UUID) -> HttpResponse:
        conversation = self.conversation(public_id)
        text = render_to_string(
            "dashboard/conversations/transcript.txt",
            {
                "conversation": conversation,
                "transcript": conversation_transcript(conversation=conversation),
                "tenant": self.tenant,
            },
        )
        filename = f"conversation-{conversation.created_at:%Y%m%d}-{str(conversation.public_id)[:8]}.txt"
        return HttpResponse(
            text,
            content_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
