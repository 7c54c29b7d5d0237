"""The Netia project: settings, URLs, Celery app and shared plumbing."""

from netia.celery import app as celery_app

__all__ = ["celery_app"]
