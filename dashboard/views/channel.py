"""The channels: Papercups (connection form, check with advice, webhook URL, widget snippet) and Crisp (website
form, check, chatbox snippet)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard.forms import CrispForm, PapercupsForm
from dashboard.portal import PortalView
from netia.errors import ApplicationError
from webhooks.selectors import crisp_connection_state_get, papercups_connection_state_get, papercups_problem_advice
from webhooks.services import (
    crisp_connection_check,
    crisp_connection_set,
    crisp_widget_snippet,
    papercups_connection_check,
    papercups_connection_set,
    papercups_webhook_secret_rotate,
    papercups_widget_snippet,
)


class ChannelView(PortalView):
    """Owners only: the page holds the channel's secrets (API key form, webhook URL)."""

    template = "dashboard/channel.html"

    def context(
        self, form: PapercupsForm | None = None, crisp_form: CrispForm | None = None, **extra: Any
    ) -> dict[str, Any]:
        state = papercups_connection_state_get(tenant=self.tenant)
        crisp = crisp_connection_state_get(tenant=self.tenant)
        crisp_initial = {"website_id": crisp.website_id or "", "handoff_operator_id": crisp.handoff_operator_id}
        problem = state.last_check.problem if state.last_check else ""
        snippet = papercups_widget_snippet(tenant=self.tenant).html if state.account_id else ""
        initial = {"account_id": state.account_id or "", "base_url": self.tenant.papercups_base_url}
        return {
            "state": state,
            "advice": papercups_problem_advice(problem=problem),
            "snippet": snippet,
            "form": form or PapercupsForm(initial=initial),
            "crisp": crisp,
            "crisp_snippet": crisp_widget_snippet(tenant=self.tenant).html if crisp.website_id else "",
            "crisp_form": crisp_form or CrispForm(initial=crisp_initial),
            **extra,
        }

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(self.template, self.context())


class ChannelConnectView(ChannelView):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PapercupsForm(request.POST)
        if not form.is_valid():
            return self.page(self.template, self.context(form), status=400)
        try:
            papercups_connection_set(
                tenant=self.tenant,
                account_id=str(form.cleaned_data["account_id"]),
                api_key=form.cleaned_data["api_key"],
                base_url=form.cleaned_data["base_url"] or "",
                actor=self.actor,
                ip=self.client_ip,
            )
        except ApplicationError as error:
            problem = str(error.extra.get("problem", ""))
            form.add_error(None, error.message)
            context = self.context(form, connect_advice=papercups_problem_advice(problem=problem))
            return self.page(self.template, context, status=error.status_code)
        messages.success(request, "Papercups is connected: the bot answers your widget's visitors from now on.")
        return redirect("dashboard:channel")


class ChannelCheckView(ChannelView):
    """Run the connection check now (an htmx partial with the verdict; a full page without JavaScript)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        papercups_connection_check(tenant=self.tenant)
        self.tenant.refresh_from_db()
        context = self.context()
        if self.request.htmx:
            return self.page("dashboard/_channel_status.html", context)
        return self.page(self.template, context)


class ChannelSecretView(ChannelView):
    """A new webhook secret: the new webhook URL is shown in full, this once."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        url = papercups_webhook_secret_rotate(tenant=self.tenant, actor=self.actor, ip=self.client_ip)
        response = self.page(self.template, self.context(new_webhook_url=url))
        response["Cache-Control"] = "no-store"  # the full URL carries the secret
        return response


class ChannelCrispConnectView(ChannelView):
    """Connect the tenant's Crisp website (stored only if the website installed the Netia plugin)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = CrispForm(request.POST)
        if not form.is_valid():
            return self.page(self.template, self.context(crisp_form=form), status=400)
        try:
            crisp_connection_set(tenant=self.tenant, actor=self.actor, ip=self.client_ip, **form.cleaned_data)
        except ApplicationError as error:
            form.add_error(None, error.message)
            return self.page(self.template, self.context(crisp_form=form), status=error.status_code)
        messages.success(request, "Crisp is connected: the bot answers your chatbox's visitors from now on.")
        return redirect("dashboard:channel")


class ChannelCrispCheckView(ChannelView):
    """Check the Crisp connection now (an htmx partial with the verdict; a full page without JavaScript)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        crisp_connection_check(tenant=self.tenant)
        if self.request.htmx:
            return self.page("dashboard/_crisp_status.html", self.context())
        return self.page(self.template, self.context())
