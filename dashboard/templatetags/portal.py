"""Template helpers of the portal: navigation icons, readable codes, the current page."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Simple 24 by 24 stroke icons drawn for Netia's navigation.
_ICONS = {
    "overview": "M4 13h6V4H4zM14 20h6v-9h-6zM14 4v4h6V4zM4 20h6v-4H4z",
    "setup": "M9 11l3 3 8-8M20 12v6a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h9",
    "conversations": "M4 5h16v10H9l-5 4z",
    "leads": "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 21a8 8 0 0 1 16 0",
    "knowledge": "M5 4h10l4 4v12H5zM15 4v4h4M8 12h8M8 16h6",
    "bot": "M6 8h12v10H6zM12 4v4M9 12h.01M15 12h.01M9 15h6",
    "channel": "M10 14a4 4 0 0 0 6 0l3-3a4 4 0 0 0-6-6l-1 1M14 10a4 4 0 0 0-6 0l-3 3a4 4 0 0 0 6 6l1-1",
    "billing": "M3 6h18v12H3zM3 10h18M7 15h4",
    "api-keys": "M14 10a4 4 0 1 0-4 4M10 14l8 8M15 19l2-2M17 21l2-2",
    "team": "M9 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM3 20a6 6 0 0 1 12 0M16 5a3 3 0 0 1 0 6M21 20a6 6 0 0 0-4-5.6",
    "demo": "M14 3h7v7M21 3l-9 9M19 14v6H4V5h6",
    "activity": "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM12 7v5l3 3",
}


@register.simple_tag
def icon(name: str) -> SafeString:
    """An inline SVG icon, hidden from screen readers (the link's text names it)."""
    return format_html(
        '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="{}"/></svg>', _ICONS.get(name, "")
    )


@register.filter
def readable(code: str) -> str:
    """`opening_hours` → "Opening hours"."""
    text = str(code or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


@register.simple_tag(takes_context=True)
def current(context: template.Context, *names: str) -> SafeString | str:
    """`aria-current="page"` when the page is one of the URL names given."""
    match = getattr(context.get("request"), "resolver_match", None)
    return mark_safe(' aria-current="page"') if match and match.url_name in names else ""
