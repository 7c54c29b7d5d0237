"""HTML pages of the customer portal."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    """The landing page: what Netia is and where to go."""
    return render(request, "dashboard/home.html")
