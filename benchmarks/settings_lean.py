"""Netia's settings without the metrics and request-logging middleware: bench_http measures what they cost."""

from netia.settings import *  # noqa: F403
from netia.settings import MIDDLEWARE

# The request logging and metrics are netia.middleware's subclasses of django-structlog's and django-prometheus'.
MIDDLEWARE = [
    m
    for m in MIDDLEWARE
    if not m.startswith(("django_prometheus.", "django_structlog.", "netia.middleware.Prometheus"))
    and m != "netia.middleware.RequestLogMiddleware"
]
