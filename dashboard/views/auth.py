"""Sign-up, sign-in by magic link, sign-out. Public pages: everything else in the portal needs a session."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from dashboard.forms import LoginForm, LoginLinkForm, SignupForm
from dashboard.portal import SESSION_TENANT_KEY
from netia import ratelimits
from netia.errors import RateLimited, ValidationFailed
from tenants.audit import Actor
from tenants.models import User
from tenants.selectors import memberships_of_user
from tenants.services import SignInReason, safe_next_path, sign_in_email_request, tenant_onboard


def _email_key(email: str) -> ratelimits.KeyFn:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return lambda group, request: digest


def _minutes() -> dict[str, int]:
    return {"link_minutes": settings.SESAME_MAX_AGE // 60}


def _link_user(request: HttpRequest, token: str) -> User | None:
    """The user a sign-in link's token names (checked, not spent), or None.

    Authenticated with the request (django-sesame's `get_user(token)` has none), so the staff console's
    sign-in throttling sees where it comes from and leaves it alone.
    """
    user = authenticate(request, sesame=token) if token else None
    return user if isinstance(user, User) else None


def _rate_limited(request: HttpRequest, template: str, form: object) -> HttpResponse:
    context = {"form": form, "error": "Too many attempts. Wait a while, then try again."}
    response = render(request, template, context, status=429)
    response["Retry-After"] = "600"
    return response


class SignupView(View):
    """Business name and email → a new business on its free trial, and a sign-in link by email."""

    template = "dashboard/auth/signup.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template, {"form": SignupForm()})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SignupForm(request.POST)
        if not form.is_valid():
            return render(request, self.template, {"form": form}, status=400)
        try:
            ratelimits.enforce(
                request, group="portal:signup:ip", key=ratelimits.client_ip, rate=settings.PORTAL_SIGNUP_RATE_PER_IP
            )
        except RateLimited:
            return _rate_limited(request, self.template, form)
        try:
            result = tenant_onboard(
                name=form.cleaned_data["name"],
                owner_email=form.cleaned_data["email"],
                actor=Actor.signing_up(form.cleaned_data["email"]),
                ip=ratelimits.client_ip("audit", request),
            )
        except ValidationFailed as error:
            form.add_error("name" if error.extra.get("field") == "name" else "email", error.message)
            return render(request, self.template, {"form": form}, status=400)
        sign_in_email_request(
            email=result.owner.email, reason=SignInReason.SIGNUP, tenant=result.tenant, next_path="/portal/setup"
        )
        return render(
            request, "dashboard/auth/link_sent.html", {"email": result.owner.email, "signup": True, **_minutes()}
        )


class LoginView(View):
    """Email → a sign-in link by email. The answer is the same whether or not the address has an account."""

    template = "dashboard/auth/login.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect("dashboard:overview")
        return render(request, self.template, {"form": LoginForm()})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = LoginForm(request.POST)
        if not form.is_valid():
            return render(request, self.template, {"form": form}, status=400)
        email = form.cleaned_data["email"].strip().lower()
        try:
            # Per IP against scanning many addresses, per address against flooding one inbox.
            ratelimits.enforce(
                request, group="portal:login:ip", key=ratelimits.client_ip, rate=settings.PORTAL_LOGIN_RATE_PER_IP
            )
            ratelimits.enforce(
                request, group="portal:login:email", key=_email_key(email), rate=settings.PORTAL_LOGIN_RATE_PER_EMAIL
            )
        except RateLimited:
            return _rate_limited(request, self.template, form)
        sign_in_email_request(email=email, next_path=safe_next_path(request.GET.get("next", "")))
        return render(request, "dashboard/auth/link_sent.html", {"email": email, **_minutes()})


class LoginLinkView(View):
    """The page a sign-in link opens: a button that signs in (POST).

    The token is only checked on GET and spent on POST, so a mail scanner that follows links cannot use up a
    one-time link before its owner clicks it.
    """

    template = "dashboard/auth/link.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        token = request.GET.get(settings.SESAME_TOKEN_NAME, "")
        user = _link_user(request, token)
        if user is None:
            return render(request, self.template, {"expired": True, **_minutes()}, status=400)
        form = LoginLinkForm(
            initial={"token": token, "next": request.GET.get("next", ""), "tenant": request.GET.get("tenant")}
        )
        return render(request, self.template, {"form": form, "email": user.email})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = LoginLinkForm(request.POST)
        user = _link_user(request, form.data.get("token", "")) if form.is_valid() else None
        if user is None:
            return render(request, self.template, {"expired": True, **_minutes()}, status=400)
        login(request, user)  # moves last_login on: the one-time link stops working
        tenant_id = form.cleaned_data.get("tenant")
        if tenant_id and memberships_of_user(user=user).filter(tenant_id=tenant_id).exists():
            request.session[SESSION_TENANT_KEY] = tenant_id
        return redirect(safe_next_path(form.cleaned_data.get("next") or "") or "dashboard:overview")


class LogoutView(View):
    def post(self, request: HttpRequest) -> HttpResponse:
        logout(request)
        messages.info(request, "You are signed out.")
        return redirect("dashboard:login")
