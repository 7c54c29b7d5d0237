"""Who may use the admin API: a staff API key (`Authorization: Bearer ns_…`) or a staff session with CSRF.

No credential or a wrong one: 401. A valid tenant API key, or a signed-in user who is not staff: 403.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import PermissionDenied as DrfPermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from netia.errors import AuthenticationFailed, CsrfFailed, PermissionDenied
from staff.models import StaffApiKey
from staff.services import STAFF_KEY_SCHEME, staff_key_authenticate
from tenants.audit import Actor
from tenants.keys import key_resolve
from tenants.models import ApiKey, User
from tenants.services import API_KEY_PREFIX


def _is_tenant_api_key(raw_key: str) -> bool:
    """Whether `raw_key` is a real tenant API key (checked without touching it)."""
    try:
        key_resolve(
            scheme=API_KEY_PREFIX,
            raw_key=raw_key,
            find=lambda prefix: ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first(),
            secret_hash=lambda found: found.secret_hash,
        )
    except AuthenticationFailed:
        return False
    return True


class StaffKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer ns_<prefix>_<secret>`: a staff user's API key. `request.auth` is the StaffApiKey."""

    def authenticate(self, request: Request) -> tuple[User, StaffApiKey] | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return None  # the session may authenticate instead
        token = header.removeprefix("Bearer ").strip()
        if not header.startswith("Bearer ") or not token:
            raise AuthenticationFailed("Send 'Authorization: Bearer <staff API key>'.")
        if not token.startswith(f"{STAFF_KEY_SCHEME}_") and _is_tenant_api_key(token):
            raise PermissionDenied("A tenant API key cannot use the admin API.", extra={"reason": "not_staff"})
        key = staff_key_authenticate(raw_key=token)
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class StaffSessionAuthentication(SessionAuthentication):
    """The staff console's session cookie; unsafe methods need the CSRF token (`X-CSRFToken`)."""

    def enforce_csrf(self, request: Request) -> None:
        """Refuse a write without the token as `csrf_failed`, the code Django's own CSRF check answers under
        /api/, rather than DRF's PermissionDenied, which would read as a missing permission (`forbidden`)."""
        try:
            super().enforce_csrf(request)
        except DrfPermissionDenied:
            raise CsrfFailed() from None


class IsStaffWithPermission(BasePermission):
    """An active staff user holding the Django permission the view names for the method.

    Views declare `required_permissions = {"GET": "tenants.view_tenant", "POST": "tenants.change_tenant"}`;
    superusers hold every permission, a view-only staff user only the view ones.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False  # DRF answers 401 with `WWW-Authenticate: Bearer`
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("Only Netia staff may use the admin API.", extra={"reason": "not_staff"})
        permission = getattr(view, "required_permissions", {}).get(request.method)
        if permission is None:
            return request.method == "OPTIONS"
        if not user.has_perm(permission):
            raise PermissionDenied("Your staff account lacks the permission.", extra={"required": permission})
        return True


def staff_actor(request: Request) -> Actor:
    """The audit trail's actor for an admin API request: the staff user, and the staff key when one was used."""
    user: User = request.user  # type: ignore[assignment]  # IsStaffWithPermission let the request in
    key = request.auth
    if isinstance(key, StaffApiKey):
        return Actor.staff(user, key_id=key.pk, key_label=f"staff key {key}")
    return Actor.staff(user)
