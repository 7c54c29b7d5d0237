"""The business's audit trail (owners only): who changed what, when, from where."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from dashboard.portal import PortalView, paginated
from tenants.audit import audit_actor_for_tenant, audit_event_list


def _summary(details: dict[str, Any]) -> str:
    """`{"name": {"from": "A", "to": "B"}, "reason": "x"}` → "name: A → B · reason: x"."""
    parts = []
    for key, value in details.items():
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            value = f"{value['from'] or '—'} → {value['to'] or '—'}"
        elif isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return " · ".join(parts)


class ActivityView(PortalView):
    template = "dashboard/activity.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        listing = paginated(request, audit_event_list(tenant=self.tenant), size=50)
        rows = []
        for event in listing["page"]:
            actor, ip = audit_actor_for_tenant(event)
            rows.append({"event": event, "actor": actor, "ip": ip, "summary": _summary(event.details)})
        return self.page(self.template, {**listing, "rows": rows})
