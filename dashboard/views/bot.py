"""The bot's settings, and the "try it" panel that talks to it exactly as a visitor would."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from chat.knowledge import bot_configuration_update
from chat.selectors import bot_configuration_get
from dashboard.bot_form import BotForm
from dashboard.portal import TEAM, PortalView
from netia.errors import ValidationFailed


class BotView(PortalView):
    roles = TEAM
    template = "dashboard/bot.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        form = BotForm(initial=BotForm.initial_from(bot_configuration_get()))
        return self.page(self.template, {"form": form})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = BotForm(request.POST)
        if form.is_valid():
            try:
                bot_configuration_update(tenant=self.tenant, **form.changes())
            except ValidationFailed as error:
                form.add_service_errors(error.extra.get("fields", {}))
            else:
                messages.success(request, "Bot settings saved. The bot uses them from the next message on.")
                return redirect("dashboard:bot")
        return self.page(self.template, {"form": form}, status=400)
