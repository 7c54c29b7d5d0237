"""Leads: list with filters, status and notes, CSV export."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from chat.models import Lead
from chat.selectors import bot_configuration_get, lead_list, lead_search
from chat.services import lead_update
from dashboard.forms import LeadFilterForm, LeadForm
from dashboard.portal import TEAM, PortalView, paginated

CSV_COLUMNS = ["id", "created_at", "status", "name", "email", "phone", "intent", "notes", "conversation_id"]


def _filtered(request: HttpRequest) -> tuple[LeadFilterForm, Any]:
    form = LeadFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    leads = lead_search(
        q=data.get("q", ""),
        status=data.get("status", ""),
        date_from=data.get("date_from"),
        date_to=data.get("date_to"),
        tz=bot_configuration_get().timezone,
    )
    return form, leads


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula (leading =, +, -, @ are quoted away)."""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


class LeadListView(PortalView):
    roles = TEAM

    def get(self, request: HttpRequest) -> HttpResponse:
        form, leads = _filtered(request)
        return self.page("dashboard/leads/list.html", {"form": form, **paginated(request, leads)})


class LeadDetailView(PortalView):
    roles = TEAM

    def lead(self, lead_id: int) -> Lead:
        lead = lead_list().filter(pk=lead_id).first()
        if lead is None:
            raise Http404
        return lead

    def get(self, request: HttpRequest, lead_id: int) -> HttpResponse:
        lead = self.lead(lead_id)
        form = LeadForm(initial={"status": lead.status, "notes": lead.notes})
        return self.page("dashboard/leads/detail.html", {"lead": lead, "form": form})

    def post(self, request: HttpRequest, lead_id: int) -> HttpResponse:
        lead = self.lead(lead_id)
        form = LeadForm(request.POST)
        if not form.is_valid():
            return self.page("dashboard/leads/detail.html", {"lead": lead, "form": form}, status=400)
        lead_update(lead=lead, status=form.cleaned_data["status"], notes=form.cleaned_data["notes"])
        messages.success(request, "Lead saved.")
        return redirect("dashboard:lead", lead_id=lead.pk)


class LeadExportView(PortalView):
    """The leads matching the list's filters, as CSV."""

    roles = TEAM

    def get(self, request: HttpRequest) -> HttpResponse:
        _, leads = _filtered(request)
        writer = csv.writer(_Echo())
        rows = [writer.writerow(CSV_COLUMNS)]
        for lead in leads:
            values = [
                lead.pk,
                lead.created_at.isoformat(),
                lead.status,
                lead.name,
                lead.email,
                lead.phone,
                lead.intent,
                lead.notes,
                lead.conversation.public_id,
            ]
            rows.append(writer.writerow([_cell(v) for v in values]))
        filename = f"leads-{timezone.now():%Y%m%d}.csv"
        return HttpResponse(
            "".join(rows),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
