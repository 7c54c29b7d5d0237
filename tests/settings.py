"""Test settings: the project's settings in local-development mode.

Settings default to production (DJANGO_DEBUG off, secrets and servers required); the suite runs in local
mode unless the environment says otherwise, so `pytest` works from a fresh clone. Tests of the production
configuration start their own processes with their own environment (tests/test_production_settings.py).
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from netia.settings import *  # noqa: F403
