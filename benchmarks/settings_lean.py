"""Netia's settings without the metrics and request-logging middleware: bench_http measures what they cost."""

from netia.settings import *  # noqa: F403
from netia.settings import MIDDLEWARE

# The request logging is netia.middleware.RequestLogMiddleware (django-structlog's, subclassed).
MIDDLEWARE = [
    m
    for m in MIDDLEWARE
    if not m.startswith(("django_prometheus.", "django_structlog.")) and m != "netia.middleware.RequestLogMiddleware"
]
