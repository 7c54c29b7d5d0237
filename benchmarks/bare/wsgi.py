"""WSGI entry point of the bare baseline project."""

from __future__ import annotations

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bare.settings"

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
