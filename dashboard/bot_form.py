"""The bot settings form: the configuration's JSON settings (hours, keywords) as plain text fields.

The form only converts text to the configuration's shapes; `chat.services.bot_configuration_update`
validates and saves them (its errors are shown beside the matching fields).
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any

from django import forms

from chat.intents import DEFAULT_INTENT_KEYWORDS, OTHER
from chat.models import WEEKDAYS, BotConfiguration
from dashboard.forms import PortalForm

DAY_NAMES = dict(
    zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True)
)
INTENTS = [intent for intent in DEFAULT_INTENT_KEYWORDS if intent != OTHER]
_RANGE = re.compile(r"^(\d{1,2}:\d{2})\s*[-\u2013]\s*(\d{1,2}:\d{2})$")
TEXT_FIELDS = [
    "bot_name",
    "persona",
    "tone",
    "business_facts",
    "greeting",
    "away_message",
    "handoff_message",
    "timezone",
    "language",
    "reply_language",
    "cite_sources",
    "llm_model",
    "temperature",
    "max_tokens",
    "widget_title",
    "primary_color",
]


@cache
def _timezones() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


def _words(text: str) -> list[str]:
    """Comma- or line-separated phrases, trimmed, without empties or repeats."""
    return list(dict.fromkeys(w.strip() for w in re.split(r"[,\n]", text) if w.strip()))


def hours_to_text(ranges: list[list[str]]) -> str:
    return ", ".join(f"{start}-{end}" for start, end in ranges)


def _pad(hhmm: str) -> str:
    hours, minutes = hhmm.split(":")
    return f"{int(hours):02d}:{minutes}"


class BotForm(PortalForm):
    bot_name = forms.CharField(label="Bot name", max_length=80)
    persona = forms.CharField(label="Persona", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    tone = forms.CharField(label="Tone", max_length=80)
    business_facts = forms.CharField(
        label="Business facts",
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Facts the bot may always use: address, phone, what you sell.",
    )
    greeting = forms.CharField(label="Greeting", max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))
    timezone = forms.ChoiceField(label="Time zone", choices=_timezones)
    away_message = forms.CharField(
        label="Away message", max_length=1000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Sent outside hours."
    )
    handoff_keywords = forms.CharField(
        label="Handoff keywords",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Comma-separated words or phrases that always pass the chat to your team.",
    )
    handoff_message = forms.CharField(
        label="Handoff message", max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )
    language = forms.CharField(label="Language code", max_length=16, help_text="e.g. en, es, fr: for search.")
    reply_language = forms.ChoiceField(label="Reply language", choices=BotConfiguration.ReplyLanguage.choices)
    cite_sources = forms.BooleanField(
        label="Cite sources",
        required=False,
        help_text="End replies in Papercups with the titles of the articles they come from.",
    )
    llm_model = forms.CharField(label="Model", max_length=100)
    temperature = forms.FloatField(
        label="Temperature", min_value=0, max_value=2, help_text="0 = precise, 2 = creative."
    )
    max_tokens = forms.IntegerField(label="Maximum reply length (tokens)", min_value=1, max_value=4000)
    widget_title = forms.CharField(label="Widget title", max_length=120)
    primary_color = forms.CharField(
        label="Widget colour", max_length=7, widget=forms.TextInput(attrs={"type": "color"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_fields()

    def _add_fields(self) -> None:
        for day, name in DAY_NAMES.items():
            self.fields[f"hours_{day}"] = forms.CharField(
                label=name, required=False, max_length=100, widget=forms.TextInput(attrs={"placeholder": "Closed"})
            )
        for intent in INTENTS:
            self.fields[f"intent_{intent}"] = forms.CharField(
                label=intent.replace("_", " ").capitalize(),
                required=False,
                widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Netia's default keywords"}),
            )

    @classmethod
    def initial_from(cls, config: BotConfiguration) -> dict[str, Any]:
        initial: dict[str, Any] = {name: getattr(config, name) for name in TEXT_FIELDS}
        initial["handoff_keywords"] = ", ".join(config.handoff_keywords or [])
        for day in WEEKDAYS:
            initial[f"hours_{day}"] = hours_to_text((config.business_hours or {}).get(day, []))
        for intent, words in (config.intent_keywords or {}).items():
            initial[f"intent_{intent}"] = ", ".join(words)
        return initial

    def hour_fields(self) -> list[forms.BoundField]:
        return [self[f"hours_{day}"] for day in WEEKDAYS]

    def intent_fields(self) -> list[forms.BoundField]:
        return [self[f"intent_{intent}"] for intent in INTENTS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for day in WEEKDAYS:
            ranges = []
            for part in _words(data.get(f"hours_{day}", "")):
                match = _RANGE.match(part)
                if not match:
                    self.add_error(f"hours_{day}", f"Write hours like 09:00-17:00 (got “{part}”).")
                    break
                ranges.append([_pad(match.group(1)), _pad(match.group(2))])
            data[f"hours_{day}"] = ranges
        return data

    def changes(self) -> dict[str, Any]:
        """The configuration fields to save, in the configuration's shapes."""
        data = self.cleaned_data
        changes = {name: data[name] for name in TEXT_FIELDS}
        changes["business_facts"] = data.get("business_facts", "")
        changes["handoff_keywords"] = _words(data.get("handoff_keywords", ""))
        # No hours at all means "always open"; once any day has hours, the days left empty are closed.
        changes["business_hours"] = {day: data[f"hours_{day}"] for day in WEEKDAYS if data[f"hours_{day}"]}
        changes["intent_keywords"] = {
            intent: _words(data[f"intent_{intent}"]) for intent in INTENTS if _words(data.get(f"intent_{intent}", ""))
        }
        return changes

    def add_service_errors(self, fields: dict[str, Any]) -> None:
        """Show `bot_configuration_update`'s field errors beside the fields they concern."""
        targets = {"business_hours": "hours_mon", "intent_keywords": "intent_greeting"}
        for name, problems in fields.items():
            field = name if name in self.fields else targets.get(name)
            for problem in problems if isinstance(problems, list) else [problems]:
                self.add_error(field, str(problem))
