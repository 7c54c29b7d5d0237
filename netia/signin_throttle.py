"""Password guessing on the staff console is throttled (django-axes); the portal's magic links are not its
business (they are unguessable, and their forms have their own rate limits).

Only sign-ins to the admin site count and can be refused: a request-less `authenticate()` (django-sesame
checking a link's token) and the portal's sign-ins pass through untouched, so they neither raise nor lock a
client out of the console.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from django.http import HttpRequest


class AdminSignInThrottle(AxesStandaloneBackend):
    """Refuses a locked-out client's sign-in before any password is checked (first in AUTHENTICATION_BACKENDS)."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:  # not a sign-in form: a token check (django-sesame)
            return None
        return super().authenticate(request, *args, **kwargs)


class AdminSignInHandler(AxesDatabaseHandler):
    """Records failures and successes of admin sign-ins only (AXES_HANDLER)."""

    def _counts(self, request: HttpRequest | None) -> bool:
        return request is not None and self.is_admin_request(request)

    def user_login_failed(self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
        if self._counts(request):
            super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        if self._counts(request):
            super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        if self._counts(request):
            super().user_logged_out(sender, request, user, **kwargs)
