"""The team (owners only): invite by email (a sign-in link), change roles, remove members."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard.forms import InviteForm, RoleForm
from dashboard.portal import PortalView
from netia.errors import ApplicationError
from tenants.models import Membership
from tenants.selectors import membership_list
from tenants.services import membership_invite, membership_remove, membership_role_set


class TeamView(PortalView):
    template = "dashboard/team.html"

    def context(self, form: InviteForm | None = None) -> dict[str, Any]:
        return {"members": membership_list(tenant=self.tenant), "form": form or InviteForm(), "roles": Membership.Role}

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(self.template, self.context())


class InviteView(TeamView):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                membership_invite(
                    tenant=self.tenant,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=self.portal.user,
                    actor=self.actor,
                    ip=self.client_ip,
                )
            except ApplicationError as error:
                form.add_error("email", error.message)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("dashboard:team")
        return self.page(self.template, self.context(form), status=400)


class _MemberView(PortalView):
    def membership(self, membership_id: int) -> Membership:
        """A membership of this business only: another business's id is not found (404)."""
        membership = membership_list(tenant=self.tenant).filter(pk=membership_id).first()
        if membership is None:
            raise Http404
        return membership


class RoleView(_MemberView):
    def post(self, request: HttpRequest, membership_id: int) -> HttpResponse:
        membership = self.membership(membership_id)
        form = RoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose owner or member.")
        else:
            membership_role_set(
                membership=membership, role=form.cleaned_data["role"], actor=self.actor, ip=self.client_ip
            )
            messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
        return redirect("dashboard:team")


class RemoveView(_MemberView):
    def post(self, request: HttpRequest, membership_id: int) -> HttpResponse:
        membership = self.membership(membership_id)
        membership_remove(membership=membership, actor=self.actor, ip=self.client_ip)
        messages.success(request, f"{membership.user.email} was removed from the team.")
        if membership.user_id == self.portal.user.pk:
            return redirect("dashboard:overview")
        return redirect("dashboard:team")
