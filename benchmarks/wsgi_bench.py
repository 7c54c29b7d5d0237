"""The platform's WSGI app plus a bare DRF view at /bench/bare: the baseline for HTTP benchmarks."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "netia.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

from django.urls import path  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from netia import urls  # noqa: E402


class BareApi(APIView):
    """Parses the JSON body and answers: the floor any DRF endpoint pays."""

    def post(self, request: Request) -> Response:
        return Response({"ok": True, "keys": sorted(request.data)})


urls.urlpatterns.insert(0, path("bench/bare", BareApi.as_view()))
