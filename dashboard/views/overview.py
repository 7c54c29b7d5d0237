"""The overview (figures and charts), the setup checklist and the business switcher."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect

from chat.analytics import PERIODS, analytics_get
from dashboard import charts
from dashboard.portal import SESSION_TENANT_KEY, TEAM, PortalView
from dashboard.selectors import setup_checklist_get

HANDOFF_REASONS = {
    "visitor_asked_for_human": "Visitor asked for a person",
    "complaint": "Complaint",
    "handoff_keyword": "Handoff keyword",
    "bot_cannot_answer": "Bot could not answer",
    "agent_replied": "Agent replied",
    "taken_over": "Taken over in the portal",
    "plan_limit_reached": "Plan limit reached",
    "trial_ended": "Trial ended",
    "subscription_inactive": "Subscription inactive",
    "payment_overdue": "Payment overdue",
    "tenant_suspended": "Account suspended",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "\u2013"  # an en dash: nothing to measure
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


class OverviewView(PortalView):
    roles = TEAM

    def get(self, request: HttpRequest) -> HttpResponse:
        raw = request.GET.get("days", "30")
        days = int(raw) if raw.isdigit() and int(raw) in PERIODS else 30
        figures = analytics_get(tenant=self.tenant, days=days)
        steps = setup_checklist_get(tenant=self.tenant)
        reasons = [(HANDOFF_REASONS.get(r, r.replace("_", " ").capitalize()), n) for r, n in figures.handoffs_by_reason]
        return self.page(
            "dashboard/overview.html",
            {
                "figures": figures,
                "periods": PERIODS,
                "steps": steps,
                "steps_done": sum(s.done for s in steps),
                "first_reply": _duration(figures.first_reply_median_seconds),
                "handoff_reasons": reasons,
                "daily_chart": charts.daily_bars(figures.conversations_per_day, title="Conversations per day"),
                "share_chart": charts.donut(figures.answered_by_bot_share, title="Answered by the bot"),
                "reasons_chart": charts.ranked_bars(reasons, title="Handoffs by reason"),
                "intents_chart": charts.ranked_bars(figures.top_intents, title="Top intents"),
                "usage_chart": charts.meter(
                    figures.ai_replies_used, figures.ai_replies_limit, title="AI replies this billing period"
                ),
            },
        )


class SetupView(PortalView):
    roles = TEAM

    def get(self, request: HttpRequest) -> HttpResponse:
        steps = setup_checklist_get(tenant=self.tenant)
        return self.page("dashboard/setup.html", {"steps": steps, "steps_done": sum(s.done for s in steps)})


class SwitchTenantView(PortalView):
    """Make another of the user's businesses the current one (checked against their memberships)."""

    roles = TEAM

    def post(self, request: HttpRequest) -> HttpResponse:
        wanted = request.POST.get("tenant", "")
        if any(str(m.tenant_id) == wanted for m in self.portal.memberships):
            request.session[SESSION_TENANT_KEY] = int(wanted)
            return redirect("dashboard:overview")
        return HttpResponseRedirect(self.back_url())
