"""The portal's forms: input shapes and field-level checks only; the rules live in the services they feed."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django import forms

from chat.models import Conversation, Lead
from tenants.models import ApiKey, Membership


class PortalForm(forms.Form):
    """The portal's forms: labels without a trailing colon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SignupForm(PortalForm):
    name = forms.CharField(label="Business name", max_length=200, widget=forms.TextInput(attrs={"autofocus": True}))
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class LoginForm(PortalForm):
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))


class LoginLinkForm(PortalForm):
    token = forms.CharField(widget=forms.HiddenInput)
    next = forms.CharField(required=False, widget=forms.HiddenInput)
    tenant = forms.IntegerField(required=False, widget=forms.HiddenInput)


def _blank_choice(label: str, choices: Any) -> list[tuple[str, str]]:
    return [("", label), *[(str(value), str(text)) for value, text in choices]]


class _DateRangeForm(PortalForm):
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if isinstance(start, date) and isinstance(end, date) and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data


class ConversationFilterForm(_DateRangeForm):
    q = forms.CharField(label="Search", required=False, max_length=200)
    status = forms.ChoiceField(label="Status", required=False, choices=_blank_choice("Any status", []))
    channel = forms.ChoiceField(label="Channel", required=False)
    intent = forms.ChoiceField(label="Intent", required=False)

    def __init__(self, *args: Any, intents: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["status"]).choices = _blank_choice(
            "Any status", Conversation.Status.choices
        )
        cast(forms.ChoiceField, self.fields["channel"]).choices = _blank_choice(
            "Any channel", Conversation.Channel.choices
        )
        cast(forms.ChoiceField, self.fields["intent"]).choices = _blank_choice(
            "Any intent", [(i, i.replace("_", " ").capitalize()) for i in intents]
        )
        self.fields["q"].widget.attrs["placeholder"] = "Name, email or words in the chat"
        self.fields["q"].widget.attrs["type"] = "search"


class LeadFilterForm(_DateRangeForm):
    q = forms.CharField(label="Search", required=False, max_length=200)
    status = forms.ChoiceField(label="Status", required=False, choices=_blank_choice("Any status", Lead.Status.choices))


class LeadForm(PortalForm):
    status = forms.ChoiceField(label="Status", choices=Lead.Status.choices)
    notes = forms.CharField(label="Notes", required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 4}))


class NoteForm(PortalForm):
    text = forms.CharField(
        label="Internal note",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Only your team sees notes.",
    )


class ArticleForm(PortalForm):
    title = forms.CharField(label="Title", max_length=200)
    content = forms.CharField(
        label="Content",
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="Write it as you would explain it to a customer. Long texts are split into passages.",
    )
    source_url = forms.URLField(label="Source URL (optional)", required=False, assume_scheme="https")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> Any:
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)] if data else []


class ImportForm(PortalForm):
    documents = MultipleFileField(
        label="Files to import",
        help_text="Markdown or text documents (one article each; a first # heading becomes the title), or a CSV "
        'with "question" and "answer" columns.',
        widget=MultipleFileInput(attrs={"accept": ".md,.markdown,.txt,.csv"}),
    )


class KnowledgeTestForm(PortalForm):
    question = forms.CharField(label="Question", max_length=500)


class PapercupsForm(PortalForm):
    account_id = forms.UUIDField(
        label="Papercups account id", help_text="The token in your Papercups chat widget code."
    )
    api_key = forms.CharField(
        label="Personal API key",
        max_length=1000,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Of the Papercups user the bot posts as. Stored encrypted; never shown again.",
    )
    base_url = forms.URLField(
        label="Papercups URL (self-hosted only)",
        required=False,
        assume_scheme="https",
        help_text="Empty: app.papercups.io.",
    )


class CrispForm(PortalForm):
    website_id = forms.CharField(
        label="Crisp website id",
        max_length=64,
        help_text="The CRISP_WEBSITE_ID in your Crisp chatbox code. Install the Netia plugin on that website first.",
    )
    handoff_operator_id = forms.CharField(
        label="Operator for handed-over chats (optional)",
        max_length=64,
        required=False,
        help_text="A Crisp operator's user id: chats the bot hands to your team are routed to them.",
    )


class InviteForm(PortalForm):
    email = forms.EmailField(label="Email")
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RoleForm(PortalForm):
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices)


class ApiKeyForm(PortalForm):
    name = forms.CharField(label="Key name", max_length=100, help_text="Where the key is used, e.g. “CRM sync”.")
    permissions = forms.MultipleChoiceField(
        label="Permissions",
        choices=ApiKey.Permission.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Permission.KNOWLEDGE_READ, ApiKey.Permission.CONVERSATIONS_READ, ApiKey.Permission.LEADS_READ],
    )
